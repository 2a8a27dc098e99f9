;;; Loaded by check.scm (its `check', `check-error', `pass', `fail', `repo',
;;; `tmp'): the channel's procedures, evaluated with the stand-ins.

(use-modules (latchkey packages)
             (latchkey services)
             (latchkey mapped-devices)
             (latchkey-test stubs)
             (guix packages)
             (gnu services)
             (gnu services shepherd)
             (gnu system mapped-devices)
             (ice-9 textual-ports))

;;; (latchkey packages)

(define lock-text
  (call-with-input-file (string-append repo "/Cargo.lock") get-string-all))
(define crates (cargo-lock-registry-crates lock-text))
(define (count-lines-starting prefix text)
  (count (cut string-prefix? prefix <>) (string-split text #\newline)))

(check "Cargo.lock: one crate per registry package"
       (= (length crates)
          (count-lines-starting "source = \"registry+https://github.com/rust-lang/crates.io-index\"" lock-text)))
(check "Cargo.lock: every crate has a SHA-256"
       (every (match-lambda
                ((name version checksum)
                 (and (= 64 (string-length checksum))
                      (string-every (string->char-set "0123456789abcdef") checksum))))
              crates))
(check "Cargo.lock: the workspace members are not fetched"
       (not (any (match-lambda ((name . _) (string-prefix? "latchkey" name))) crates)))
(check-error "Cargo.lock: a git dependency is refused" "git+https://example.invalid/x"
             (cargo-lock-registry-crates
              "[[package]]\nname = \"x\"\nversion = \"1.0.0\"\nsource = \"git+https://example.invalid/x\"\n"))
(check "Cargo.lock: fields of the first package"
       (equal-or-show (car (cargo-lock-packages "# c\nversion = 4\n\n[[package]]\nname = \"a\"\nversion = \"1.2.3\"\ndependencies = [\n \"b\",\n]\n"))
                      '((name . "a") (version . "1.2.3"))))

(define (native-input-origins p)
  (filter (lambda (x) (and (stub-record? x) (eq? (stub-record-type x) 'origin)))
          (package-native-inputs p)))
(check "latchkey: one origin per crate, named rust-NAME-VERSION.tar.gz"
       (equal-or-show (map (lambda (o) (stub-ref o 'file-name 'origin-file-name))
                           (native-input-origins latchkey))
                      (map (match-lambda ((name version _)
                                          (string-append "rust-" name "-" version ".tar.gz")))
                           crates)))
(check "latchkey: the version is the workspace's"
       (equal-or-show (package-version latchkey)
                      (let* ((text (call-with-input-file (string-append repo "/Cargo.toml") get-string-all))
                             (m (string-contains text "version = \"" (string-contains text "[workspace.package]"))))
                        (car (string-split (substring text (+ m 11)) #\")))))
(check "latchkey: builds latchkey and tangd"
       (equal-or-show (cadr (memq #:cargo-build-flags (package-arguments latchkey)))
                      ''("--release" "-p" "latchkey" "-p" "tangd")))
(check "latchkey-agent/static: builds the agent only, with glibc's static libraries"
       (and (equal-or-show (cadr (memq #:cargo-build-flags (package-arguments latchkey-agent/static)))
                           ''("--release" "-p" "latchkey-agent"))
            (string-contains (format #f "~s" (package-arguments latchkey-agent/static))
                             "-C target-feature=+crt-static")
            (equal? (map cadr (package-inputs latchkey-agent/static)) '("static"))))

(define source (package-source latchkey))
(define select? (stub-ref source 'select? 'local-file-select?))
(check "source: the checkout, recursively"
       (and (equal-or-show (stub-ref source 'file 'local-file-file) repo)
            (stub-ref source 'recursive? 'local-file-recursive?)))
(check "source: what cargo reads and nothing else"
       (equal-or-show
        (map (lambda (rel) (select? (string-append repo "/" rel) #f))
             '("Cargo.toml" "Cargo.lock" "agent" "agent/src/main.rs" "crates/proto/src/lib.rs"
               "tangd/tangd.service" "README.md" "target/release/tangd" "fuzz/Cargo.toml"
               "guix/modules/latchkey/packages.scm" "crates/x/target/y"))
        '(#t #t #t #t #t #t #f #f #f #f #f)))

;;; (latchkey services)

(define default-config (tangd-configuration))
(check "tangd: socket-activated by default, keys in /var/db/tang"
       (equal-or-show (tangd-serve-arguments default-config) '("serve" "--keys" "/var/db/tang")))
(check "tangd: long-running, it binds the addresses itself"
       (equal-or-show
        (tangd-serve-arguments (tangd-configuration
                                (socket-activation? #f)
                                (keys-directory "/var/lib/tang")
                                (listen-addresses '("192.0.2.5:7654" "[2001:db8::5]:7654"))
                                (extra-arguments '("--threads" "2"))))
        '("serve" "--keys" "/var/lib/tang" "--listen" "192.0.2.5:7654"
          "--listen" "[2001:db8::5]:7654" "--threads" "2")))
(check "tangd: listen addresses parsed for the Shepherd's endpoints"
       (equal-or-show (map tangd-listen-address '("0.0.0.0:80" "[::]:7654" "[::1]:1"))
                      '((inet "0.0.0.0" 80) (inet6 "::" 7654) (inet6 "::1" 1))))
(check-error "tangd: a host name is refused, naming it" "localhost:80"
             (tangd-listen-address "localhost:80"))
(check-error "tangd: port 0 is refused" "from 1 to 65535"
             (tangd-listen-address "0.0.0.0:0"))
(check-error "tangd: no address at all is refused" "listen-addresses is empty"
             (tangd-serve-arguments (tangd-configuration (listen-addresses '()))))
(check-error "tangd: port 80 without socket activation is refused" "below 1024"
             (tangd-shepherd-service (tangd-configuration
                                      (socket-activation? #f)
                                      (listen-addresses '("0.0.0.0:80")))))

(define shepherd (tangd-shepherd-service default-config))
(define start (format #f "~s" (stub-ref shepherd 'start 'shepherd-service-start)))
(check "tangd: Shepherd service `tangd', after the network"
       (and (equal-or-show (stub-ref shepherd 'provision 'p) '(tangd))
            (equal-or-show (stub-ref shepherd 'requirement 'r) '(networking))))
(check "tangd: the Shepherd listens and starts tangd as `tang'"
       (and (string-contains start "(make-systemd-constructor (cons \"/gnu/store/00000000000000000000000000000000-latchkey/bin/tangd\" (quote (\"serve\" \"--keys\" \"/var/db/tang\")))")
            (string-contains start "(quote ((inet \"0.0.0.0\" 7654) (inet6 \"::\" 7654)))")
            (string-contains start "#:user \"tang\" #:group \"tang\"")))
(check "tangd: a rotate-keys action, which runs tangd rotate and hands the files to tang"
       (match (stub-ref shepherd 'actions 'a)
         ((action)
          (let ((code (format #f "~s" (stub-ref action 'procedure 'p))))
            (and (eq? (stub-ref action 'name 'n) 'rotate-keys)
                 (string-contains code "(system* \"/gnu/store/00000000000000000000000000000000-latchkey/bin/tangd\" \"rotate\" \"/var/db/tang\")")
                 (string-contains code "chown"))))
         (_ #f)))
(check "tangd: the service type extends the Shepherd, accounts, activation and the profile"
       (equal-or-show (map (lambda (e) (procedure-name (cadr (cadr e))))
                           (stub-ref tangd-service-type 'extensions 'e))
                      '(shepherd-root-service-type account-service-type
                        activation-service-type profile-service-type)))

;;; (latchkey mapped-devices)

(check "crypttab: a UUID, lower-cased"
       (equal-or-show (latchkey-crypttab-line "cryptroot" "0D3F1B52-7A37-4C2B-9B0E-3C1F5E2A9D10")
                      "cryptroot UUID=0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10 none luks\n"))
(check "crypttab: a /dev file name"
       (equal-or-show (latchkey-crypttab-line "home" "/dev/sda3") "home /dev/sda3 none luks\n"))
(check-error "crypttab: a label is refused, naming it" "LABEL=x"
             (latchkey-crypttab-line "home" "LABEL=x"))
(check-error "crypttab: a target with a slash is refused" "a/b"
             (latchkey-crypttab-line "a/b" "/dev/sda3"))
(check "options: every setting as the agent's command-line words"
       (equal-or-show
        (latchkey-option-words #:timeout 5/2 #:deadline 90 #:prompt-delay 0
                               #:boot-device "UUID=1234-abcd" #:key-file "/boot/k"
                               #:ip '("eth0:dhcp") #:nameservers '("192.0.2.53") #:debug? #t)
        '("latchkey.timeout=2.5" "latchkey.deadline=90" "latchkey.prompt-delay=0"
          "latchkey.boot=UUID=1234-abcd" "latchkey.key=/boot/k" "ip=eth0:dhcp"
          "nameserver=192.0.2.53" "latchkey.debug")))
(check "options: none by default"
       (null? (latchkey-option-words)))
(check-error "options: a key file without a boot device is refused" "needs #:boot-device"
             (latchkey-option-words #:key-file "/boot/k"))
(check-error "options: a timeout past the deadline is refused" "longer than #:deadline"
             (latchkey-option-words #:timeout 90 #:deadline 60))
(check-error "options: a zero timeout is refused" "positive number of seconds"
             (latchkey-option-words #:timeout 0))
(check "agent arguments: no prompt unless asked"
       (and (equal-or-show (latchkey-agent-arguments "/run/t" "/run/c")
                           '("unlock" "--crypttab" "/run/t" "--cmdline" "/run/c" "--no-prompt"))
            (equal-or-show (latchkey-agent-arguments "/run/t" "/run/c" #:prompt? #t)
                           '("unlock" "--crypttab" "/run/t" "--cmdline" "/run/c"))))
(check "mapping: close, check and initrd modules are luks-device-mapping's"
       (equal-or-show
        (map (lambda (f) (procedure-name (f latchkey-luks-device-mapping)))
             (list mapped-device-kind-close mapped-device-kind-check mapped-device-kind-modules))
        '(luks-device-mapping/mapped-device-kind-close
          luks-device-mapping/mapped-device-kind-check
          luks-device-mapping/mapped-device-kind-modules)))

;;; The initrd code of the mapping, run: /run/latchkey moved to a scratch
;;; directory, the agent replaced by a script that records its argv and
;;; exits with $RC, luks-device-mapping's open replaced by a recorder.

(define (relocate tree from to)
  (cond ((and (string? tree) (string-prefix? from tree))
         (string-append to (string-drop tree (string-length from))))
        ((pair? tree) (cons (relocate (car tree) from to) (relocate (cdr tree) from to)))
        (else tree)))

(define agent-dir (string-append tmp "/agent"))
(mkdir-p (string-append agent-dir "/bin"))
(call-with-output-file (string-append agent-dir "/bin/latchkey-agent")
  (lambda (port)
    (display "#!/bin/sh\nprintf '%s\\n' \"$*\" >\"$ARGV_LOG\"\nexit \"$RC\"\n" port)))
(chmod (string-append agent-dir "/bin/latchkey-agent") #o755)

(define (run-open rc)
  (let* ((kind (latchkey-luks-device-mapping-with-options
                #:agent agent-dir #:timeout 3 #:ip '("eth0:dhcp")))
         (code ((mapped-device-kind-open kind)
                (uuid "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10") '("cryptroot")))
         (run (string-append tmp "/run-" (number->string rc)))
         (fallback '())
         (module (make-fresh-user-module)))
    (mkdir-p run)
    (module-define! module 'luks-device-mapping/mapped-device-kind-open
                    (lambda args (set! fallback args) 'fallback-result))
    (setenv "RC" (number->string rc))
    (setenv "ARGV_LOG" (string-append run "/argv"))
    (let ((result (eval (relocate code "/run/latchkey" (string-append run "/latchkey")) module)))
      (list result fallback run))))

(match (run-open 0)
  ((result fallback run)
   (check "initrd, agent opened the volume: true, no passphrase prompt"
          (and (eq? result #t) (null? fallback)))
   (check "initrd: the agent's argv"
          (equal-or-show (call-with-input-file (string-append run "/argv") get-string-all)
                         (string-append "unlock --crypttab " run "/latchkey/cryptroot.crypttab"
                                        " --cmdline " run "/latchkey/cryptroot.cmdline --no-prompt\n")))
   (check "initrd: the crypttab names this volume as Guix does"
          (equal-or-show (call-with-input-file (string-append run "/latchkey/cryptroot.crypttab")
                           get-string-all)
                         "cryptroot UUID=0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10 none luks\n"))
   (check "initrd: the options first, then /proc/cmdline (the boot menu wins)"
          (equal-or-show (call-with-input-file (string-append run "/latchkey/cryptroot.cmdline")
                           get-string-all)
                         (string-append "latchkey.timeout=3 ip=eth0:dhcp "
                                        (string-trim-right
                                         (call-with-input-file "/proc/cmdline" get-string-all)
                                         #\newline))))))
(match (run-open 1)
  ((result fallback run)
   (check "initrd, agent failed: luks-device-mapping's open, with the same source and target"
          (and (eq? result 'fallback-result)
               (equal-or-show (map uuid->string (list (car fallback)))
                              '("0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10"))
               (equal-or-show (cadr fallback) '("cryptroot"))))))
