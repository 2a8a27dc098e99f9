;;; latchkey --- Network-Bound Disk Encryption (Clevis and Tang compatible)
;;;
;;; latchkey-luks-device-mapping: a mapped-device kind that opens a LUKS
;;; volume with latchkey-agent in the initrd (Tang, Shamir, or the local key
;;; of degraded mode) and, when the agent cannot, does what Guix's own
;;; luks-device-mapping does: `cryptsetup open', asking for the passphrase.
;;;
;;;   (mapped-device
;;;     (source (uuid "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10"))
;;;     (target "cryptroot")
;;;     (type latchkey-luks-device-mapping))
;;;
;;; Per device, the initrd writes /run/latchkey/TARGET.crypttab (this one
;;; volume, under Guix's name for it) and /run/latchkey/TARGET.cmdline (the
;;; options given here, then /proc/cmdline, so that an option typed at the
;;; boot menu wins), and runs
;;;
;;;   latchkey-agent unlock --crypttab … --cmdline … --no-prompt
;;;
;;; Degraded mode: with #:boot-device, the agent first mounts that partition
;;; read-only and reads the key file there: #:key-file with its leading
;;; /boot removed, so by default `nbde/local-boot.key' at the partition's
;;; root (with the EFI system partition on /boot/efi, that is
;;; /boot/efi/nbde/local-boot.key on the running system).  The file holds a
;;; passphrase of one of the volume's keyslots (`cryptsetup luksAddKey');
;;; anyone who can read the partition can open the volume while it is there.

(define-module (latchkey mapped-devices)
  #:use-module (gnu system mapped-devices)
  #:use-module (gnu system uuid)
  #:use-module (guix gexp)
  #:use-module (latchkey packages)
  #:use-module (ice-9 match)
  #:use-module (srfi srfi-1)
  #:export (latchkey-crypttab-line
            latchkey-option-words
            latchkey-agent-arguments
            latchkey-luks-device-mapping-with-options
            latchkey-luks-device-mapping))

(define %uuid-characters
  (string->char-set "0123456789abcdefABCDEF-"))

(define (latchkey-crypttab-line target source)
  "The crypttab line that names SOURCE (a LUKS UUID or a /dev file name)
TARGET for the agent."
  (define spec
    (cond ((and (= 36 (string-length source))
                (string-every %uuid-characters source))
           (string-append "UUID=" (string-downcase source)))
          ((string-prefix? "/dev/" source) source)
          (else (error "latchkey-luks-device-mapping: expected a UUID or a /dev \
file name as the source of" target source))))
  (when (or (string-any char-whitespace? target) (string-index target #\/))
    (error "latchkey-luks-device-mapping: a target without spaces or '/' is needed:"
           target))
  (string-append target " " spec " none luks\n"))

(define (seconds value)
  (if (and (exact? value) (integer? value))
      (number->string value)
      (number->string (exact->inexact value))))

(define* (latchkey-option-words #:key timeout deadline prompt-delay
                                key-file boot-device
                                (ip '()) (nameservers '()) debug?)
  "The agent's command-line options for these settings, as a list of words;
#f or '() leaves the agent's default."
  (define (positive who value)
    (unless (and (real? value) (positive? value))
      (error (string-append "latchkey-luks-device-mapping: #:" who
                            " must be a positive number of seconds, not")
             value))
    (seconds value))
  (when (and key-file (not boot-device))
    (error "latchkey-luks-device-mapping: #:key-file needs #:boot-device, the \
partition that holds it (a key inside the initrd would be in the store)"))
  (when (and timeout deadline (> timeout deadline))
    (error "latchkey-luks-device-mapping: #:timeout is longer than #:deadline"))
  (append (if timeout (list (string-append "latchkey.timeout=" (positive "timeout" timeout))) '())
          (if deadline (list (string-append "latchkey.deadline=" (positive "deadline" deadline))) '())
          (if prompt-delay
              (list (string-append "latchkey.prompt-delay=" (seconds prompt-delay)))
              '())
          (if boot-device (list (string-append "latchkey.boot=" boot-device)) '())
          (if key-file (list (string-append "latchkey.key=" key-file)) '())
          (map (lambda (ip) (string-append "ip=" ip)) ip)
          (map (lambda (ns) (string-append "nameserver=" ns)) nameservers)
          (if debug? '("latchkey.debug") '())))

(define* (latchkey-agent-arguments crypttab cmdline #:key prompt?)
  "The arguments of `latchkey-agent' (after the program name)."
  (append (list "unlock" "--crypttab" crypttab "--cmdline" cmdline)
          (if prompt? '() '("--no-prompt"))))

(define* (latchkey-luks-device-mapping-with-options
          #:key (agent latchkey-agent/static) prompt?
          timeout deadline prompt-delay key-file boot-device
          (ip '()) (nameservers '()) debug?)
  "Return a mapped-device kind that opens a LUKS volume with latchkey-agent,
falling back to luks-device-mapping's passphrase prompt.  #:ip takes `ip='
values of the kernel's and dracut's syntax (default: DHCP on every NIC with
carrier, only when a binding needs the network); the initrd needs the NIC's
driver in `initrd-modules'.  With PROMPT?, the agent asks on the console itself
after #:prompt-delay, while Tang is still tried."
  (define words
    (latchkey-option-words #:timeout timeout #:deadline deadline
                           #:prompt-delay prompt-delay
                           #:key-file key-file #:boot-device boot-device
                           #:ip ip #:nameservers nameservers #:debug? debug?))

  (define (open source targets)
    (match targets
      ((target)
       (let* ((dir "/run/latchkey")
              (crypttab (string-append dir "/" target ".crypttab"))
              (cmdline (string-append dir "/" target ".cmdline"))
              (line (latchkey-crypttab-line
                     target (if (uuid? source) (uuid->string source) source))))
         #~(begin
             (unless (file-exists? #$dir)
               (mkdir #$dir #o700))
             (call-with-output-file #$crypttab
               (lambda (port) (display #$line port)))
             (call-with-output-file #$cmdline
               (lambda (port)
                 (display #$(string-join words " ") port)
                 (display " " port)
                 (let ((line (call-with-input-file "/proc/cmdline"
                               (@ (ice-9 rdelim) read-line))))
                   (unless (eof-object? line)
                     (display line port)))))
             (or (zero? (apply system*
                               #$(file-append agent "/bin/latchkey-agent")
                               '#$(latchkey-agent-arguments crypttab cmdline
                                                            #:prompt? prompt?)))
                 (begin
                   (format #t "latchkey: ~a is still locked; asking for its passphrase~%"
                           #$target)
                   #$((mapped-device-kind-open luks-device-mapping)
                      source targets))))))))

  (mapped-device-kind
   (open open)
   (close (mapped-device-kind-close luks-device-mapping))
   (check (mapped-device-kind-check luks-device-mapping))
   ;; What the fallback's gexp needs in the initrd.
   (modules (mapped-device-kind-modules luks-device-mapping))))

(define latchkey-luks-device-mapping
  ;; The agent's defaults: 5 s per Tang request, 60 s in all, network by DHCP.
  (latchkey-luks-device-mapping-with-options))
