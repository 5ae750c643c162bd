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
; 79 columns (further keys are ignored until Enter).
;
; Resolution changes (function keys, which the echo ignores and no test types otherwise):
;   F2  VGA mode 0x12, 640x480, 16 colours: 16 horizontal bands of 30 lines, band i (from the
;       top) in colour i of the standard VGA palette (0 black, 1 blue, 2 green, 3 cyan, 4 red,
;       5 magenta, 6 brown, 7 light grey, 8 dark grey, ... 15 white);
;   F3  VGA mode 0x13, 320x200, 256 colours: 8 horizontal bands of 25 lines, colours 1-8;
;       QEMU's VGA doubles its pixels, so its console (VNC, D-Bus, screenshot) is 640x400;
;   F1  back to 80x25 text mode (720x400): the text screen (BIOS lines, banner, prompt row
;       and what was typed) and the cursor are exactly as before F2/F3.
; Console sizes: text 720x400, F2 640x480, F3 640x400 (a VNC client sees DesktopSize).
; In a graphics mode every other key is ignored (nothing is echoed, Enter does nothing);
; F2/F3 switch between the two graphics modes. F1 in text mode does nothing. The text screen
; is kept at 0x10000 while a graphics mode is shown (screen.py reads garbage meanwhile).
; Nothing else: it is a test fixture.
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
SC_F1       equ 0x3b            ; INT 16h scan codes (AL = 0 for function keys)
SC_F2       equ 0x3c
SC_F3       equ 0x3d
SAVE_SEG    equ 0x1000          ; the text screen (32 KiB at B800:0) while in graphics

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
    test al, al
    jz function_key
    cmp byte [gfx], 0
    jne read_key                ; graphics mode: only F1-F3 do something
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

function_key:
    cmp ah, SC_F1
    je text_mode
    mov al, 0x12
    cmp ah, SC_F2
    je graphics_mode
    mov al, 0x13
    cmp ah, SC_F3
    jne read_key
    ; fall through
; graphics_mode: AL = 0x12 or 0x13. Leaving text mode, keep its screen and cursor.
graphics_mode:
    cmp byte [gfx], 0
    jne .set
    push ax
    call cursor
    pop ax
    mov [saved_cursor], dx
    push word 0xb800
    pop ds
    push word SAVE_SEG
    pop es
    call copy_text
.set:
    mov [gfx], al
    xor ah, ah                  ; set the mode (clears the screen)
    int 0x10
    push word 0xa000
    pop es
    xor di, di
    cmp byte [gfx], 0x13
    je .mode13
    mov dx, 0x3c4               ; mode 0x12 is planar: the sequencer's map mask (index 2)
    xor bx, bx                  ; selects the planes a write sets, i.e. the colour on the
.band12:                        ; cleared screen; 30 lines = 30 * 80 bytes per band
    mov al, 2
    mov ah, bl
    out dx, ax
    mov cx, 30 * 80 / 2
    mov ax, 0xffff
    rep stosw
    inc bx
    cmp bl, 16
    jb .band12
    mov ax, 0x0f02              ; all planes again
    out dx, ax
    jmp .done
.mode13:                        ; one byte per pixel: 25 lines = 8000 bytes per band
    mov al, 1
.band13:
    mov cx, 25 * 320
    rep stosb
    inc ax
    cmp al, 9
    jb .band13
.done:
    push ds
    pop es
    jmp read_key

; text_mode: back to 80x25 text with the screen and cursor kept by graphics_mode.
text_mode:
    cmp byte [gfx], 0
    je read_key
    mov byte [gfx], 0
    mov ax, 0x0003
    int 0x10
    push word SAVE_SEG
    pop ds
    push word 0xb800
    pop es
    call copy_text
    mov ah, 0x05                ; the active page, then the cursor on it
    mov al, [page]
    int 0x10
    mov ah, 0x02
    mov bh, [page]
    mov dx, [saved_cursor]
    int 0x10
    jmp read_key

; copy_text: 32 KiB from DS:0 to ES:0, then DS = ES = 0 (keeps AX)
copy_text:
    xor si, si
    xor di, di
    mov cx, 0x4000
    rep movsw
    push word 0
    pop ds
    push word 0
    pop es
    ret

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
gfx:    db 0                    ; 0: text mode, else the graphics mode shown
saved_cursor: dw 0
crlf:   db 13, 10, 0
banner: db "kvmdesk test desktop", 0
prompt: db "kvmdesk> "
prompt_end:
        db 0

    times 510 - ($ - $$) db 0
    dw 0xaa55
    times 1048576 - ($ - $$) db 0    ; a 1 MiB raw disk
