; test-desktop.asm: the kvmdesk test desktop, a 512-byte boot sector (nasm -f bin).
;
; It boots in a few seconds under KVM or TCG and lets a test prove two things:
;  - WHICH desktop it is looking at: the screen is NOT cleared, so the SeaBIOS banner above
;    (it contains "Machine UUID <domain uuid>") stays visible;
;  - that INPUT reaches it: typed printable keys are echoed after a prompt.
;
; Screen after boot (80x25 VGA text mode, BIOS teletype, the BIOS lines scroll normally):
;      SeaBIOS (version ...)
;      Machine UUID 3f0c...            <- from SeaBIOS
;      Booting from Hard Disk...
;                                      <- empty line
;      kvmdesk test desktop            <- banner, attribute 0x0E (yellow on black)
;      kvmdesk> hi                     <- prompt row: the WHOLE row is attribute 0x1F
;                                         (bright white on blue), so it is recognisable by
;                                         colour in a screenshot; typed keys echo in 0x1F.
; Enter starts a new prompt row, Backspace erases back to the prompt; a row takes at most
; 79 columns (further keys are ignored until Enter). Nothing else: it is a test fixture.
;
; Reading the screen from a test (no OCR needed): the text screen is VGA memory at guest
; physical address 0xB8000, 80 columns x 25 rows, 2 bytes per cell (character, attribute).
;     virsh -c qemu:///system qemu-monitor-command DOM --hmp 'xp /4000bx 0xb8000'
; prints lines like "00000000000b8000: 0x53 0x07 0x65 0x07 ..." (8 bytes per line); take the
; bytes in order: even offsets are characters, odd offsets are attributes; row r, column c is
; cell r*80+c. ('xp /2000hx' works too: each halfword is attr<<8 | char.) The prompt row is the
; last row whose cells carry attribute 0x1F and which starts with "kvmdesk> ".
; data/images/test-desktop/screen.py implements exactly this (screen.py DOM prints the rows).
; Keys are sent with: virsh send-key DOM KEY_H KEY_I KEY_ENTER
; A picture: virsh screenshot DOM FILE (libvirt 9.0 + QEMU 7.2 write PNG, whatever the name).
;
; Measured under TCG (domain type 'qemu', 1 vCPU, 64 MiB, no NIC, <bootmenu enable='no'/>):
; the prompt appears about 1.3-1.5 s after `virsh create`, with the disk on virtio (q35),
; sata (q35) or ide (pc).
;
; Layout: code + strings must fit 510 bytes; then the 0xAA55 signature; then zero padding up
; to 1 MiB so the output is directly a raw disk image (qemu-img converts it to qcow2).

bits 16
org 0x7c00

ATTR_BANNER equ 0x0E            ; yellow on black
ATTR_PROMPT equ 0x1F            ; bright white on blue
COLS        equ 80
PROMPT_LEN  equ prompt_end - prompt

start:
    cli
    xor ax, ax
    mov ds, ax
    mov es, ax
    mov ss, ax
    mov sp, 0x7c00
    sti
    cld

    mov ah, 0x0f                ; current video mode -> BH = active page
    int 0x10
    mov [page], bh

    mov si, crlf                ; leave the BIOS text in place, start on a fresh line
    call puts_plain
    mov si, banner
    mov bl, ATTR_BANNER
    call puts_attr

new_prompt:
    mov si, crlf
    call puts_plain
    mov ax, 0x0900 | ' '        ; paint the whole row blue (AH=09 does not move the cursor)
    mov bh, [page]
    mov bl, ATTR_PROMPT
    mov cx, COLS
    int 0x10
    mov si, prompt
    mov bl, ATTR_PROMPT
    call puts_attr

read_key:
    xor ah, ah                  ; wait for a key: AL = ASCII, AH = scan code
    int 0x16
    cmp al, 0x0d
    je new_prompt
    cmp al, 0x08
    je backspace
    cmp al, ' '
    jb read_key
    cmp al, '~'
    ja read_key
    push ax
    call cursor                 ; DL = column
    pop ax
    cmp dl, COLS - 1
    jae read_key                ; row full: ignore until Enter
    mov bl, ATTR_PROMPT
    call putc_attr
    jmp read_key

backspace:
    call cursor
    cmp dl, PROMPT_LEN
    jbe read_key                ; never erase the prompt
    mov al, 0x08
    call putc_plain             ; cursor one column left
    mov ax, 0x0900 | ' '        ; blank that cell, keep the blue
    mov bh, [page]
    mov bl, ATTR_PROMPT
    mov cx, 1
    int 0x10
    jmp read_key

; cursor: DH = row, DL = column of the cursor on the active page (clobbers AX, CX)
cursor:
    mov ah, 0x03
    mov bh, [page]
    int 0x10
    ret

; putc_attr: AL = character, BL = attribute. AH=09 writes the cell with its attribute,
; then the teletype call writes the same character again and advances the cursor.
putc_attr:
    push ax
    push bx
    push cx
    mov ah, 0x09
    mov bh, [page]
    mov cx, 1
    int 0x10
    pop cx
    pop bx
    pop ax
    ; fall through
; putc_plain: AL = character through BIOS teletype (handles CR, LF, BS and scrolling)
putc_plain:
    push bx
    mov ah, 0x0e
    mov bh, [page]
    int 0x10
    pop bx
    ret

; puts_attr: SI = zero-terminated string, BL = attribute
puts_attr:
    lodsb
    test al, al
    jz .done
    call putc_attr
    jmp puts_attr
.done:
    ret

; puts_plain: SI = zero-terminated string (control characters only, no attribute)
puts_plain:
    lodsb
    test al, al
    jz .done
    call putc_plain
    jmp puts_plain
.done:
    ret

page:   db 0
crlf:   db 13, 10, 0
banner: db "kvmdesk test desktop", 0
prompt: db "kvmdesk> "
prompt_end:
        db 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
    times 1048576 - ($ - $$) db 0    ; a 1 MiB raw disk
