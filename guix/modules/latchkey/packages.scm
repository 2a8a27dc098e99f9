;;; latchkey --- Network-Bound Disk Encryption (Clevis and Tang compatible)
;;;
;;; The Guix packages of latchkey, built from the checkout that holds this
;;; channel:
;;;
;;;   latchkey               the operator's tool `latchkey' and the Tang server
;;;                          `tangd' (with OpenSSL), plus the systemd units
;;;   latchkey-agent/static  the initrd agent, linked statically (glibc), so the
;;;                          initrd gets one file and no shared library
;;;
;;; The crates are the ones Cargo.lock pins, each fetched from crates.io and
;;; checked against the lock file's SHA-256; cargo-build-system vendors every
;;; crate tarball among the inputs.

(define-module (latchkey packages)
  #:use-module (guix packages)
  #:use-module (guix gexp)
  #:use-module (guix utils)
  #:use-module (guix download)
  #:use-module (guix base16)
  #:use-module (guix build-system cargo)
  #:use-module ((guix licenses) #:prefix license:)
  #:use-module (gnu packages base)
  #:use-module (gnu packages pkg-config)
  #:use-module (gnu packages tls)
  #:use-module (ice-9 match)
  #:use-module (ice-9 textual-ports)
  #:use-module (srfi srfi-1)
  #:export (cargo-lock-packages
            cargo-lock-registry-crates
            latchkey-source-file?))

;;;
;;; Cargo.lock, read without a TOML library: only [[package]] tables with
;;; `key = "string"' lines are used.
;;;

(define (cargo-lock-packages text)
  "Return the [[package]] entries of the Cargo.lock TEXT, in order, each an
alist of its string-valued keys (name, version, source, checksum)."
  (define (string-value line)
    ;; `key = "value"' -> (key . value); anything else -> #f.
    (let ((eq (string-index line #\=)))
      (and eq
           (let ((key (string-trim-both (substring line 0 eq)))
                 (value (string-trim-both (substring line (+ eq 1)))))
             (and (> (string-length value) 1)
                  (string-prefix? "\"" value)
                  (string-suffix? "\"" value)
                  (cons (string->symbol key)
                        (substring value 1 (- (string-length value) 1))))))))
  (let loop ((lines (string-split text #\newline))
             (current #f)
             (result '()))
    (define (flush)
      (if current (cons (reverse current) result) result))
    (match lines
      (()
       (reverse (flush)))
      ((line rest ...)
       (let ((line (string-trim-both line)))
         (cond ((string=? line "[[package]]")
                (loop rest '() (flush)))
               ((string-prefix? "[" line)
                (loop rest #f (flush)))
               ((and current (string-value line))
                => (lambda (kv) (loop rest (cons kv current) result)))
               (else
                (loop rest current result))))))))

(define (cargo-lock-registry-crates text)
  "Return (NAME VERSION SHA256-HEX) for every crates.io package of the
Cargo.lock TEXT. A package from any other source (git, another registry) is
an error: it could not be fetched by its checksum."
  (filter-map
   (lambda (entry)
     (let ((name (assq-ref entry 'name))
           (version (assq-ref entry 'version))
           (source (assq-ref entry 'source))
           (checksum (assq-ref entry 'checksum)))
       (cond ((not source) #f)          ;a workspace member
             ((and (string=? source
                             "registry+https://github.com/rust-lang/crates.io-index")
                   checksum
                   (= 64 (string-length checksum)))
              (list name version checksum))
             (else
              (error "Cargo.lock: cannot fetch this crate by checksum:"
                     name version source)))))
   (cargo-lock-packages text)))

;;;
;;; The source.
;;;

(define %checkout
  ;; This file is guix/modules/latchkey/packages.scm of the checkout.
  (string-append (current-source-directory) "/../../.."))

(define %cargo-inputs
  ;; What cargo reads; editing the docs or the packaging does not rebuild.
  '("Cargo.toml" "Cargo.lock" "agent" "cli" "tangd" "crates"))

(define (latchkey-source-file? root)
  "Return a predicate for local-file's #:select?: true for the files under
ROOT that the build reads."
  (let ((prefix (string-append (canonicalize-path root) "/")))
    (lambda (file stat)
      (let ((relative (if (string-prefix? prefix file)
                          (string-drop file (string-length prefix))
                          file)))
        (and (member (car (string-split relative #\/)) %cargo-inputs)
             (not (string-contains relative "/target/"))
             #t)))))

(define %source
  (local-file "../../.." "latchkey-checkout"
              #:recursive? #t
              #:select? (latchkey-source-file? %checkout)))

(define %version
  ;; [workspace.package] version of Cargo.toml.
  (let* ((text (call-with-input-file (string-append %checkout "/Cargo.toml")
                 get-string-all))
         (start (string-contains text "[workspace.package]"))
         (line (find (lambda (l) (string-prefix? "version" (string-trim l)))
                     (string-split (substring text start) #\newline))))
    (match (string-split line #\")
      ((_ version _ ...) version))))

(define (crate-origin name version checksum)
  (origin
    (method url-fetch)
    (uri (crate-uri name version))
    (file-name (string-append "rust-" name "-" version ".tar.gz"))
    (sha256 (base16-string->bytevector checksum))))

(define %crates
  (map (match-lambda
         ((name version checksum)
          (crate-origin name version checksum)))
       (cargo-lock-registry-crates
        (call-with-input-file (string-append %checkout "/Cargo.lock")
          get-string-all))))

;;;
;;; The packages.
;;;

(define (install-binaries . names)
  ;; The workspace root is a virtual manifest, which `cargo install --path .'
  ;; refuses: copy the release binaries.
  #~(lambda* (#:key outputs #:allow-other-keys)
      (let ((bin (string-append (assoc-ref outputs "out") "/bin")))
        (for-each (lambda (name)
                    (install-file (string-append "target/release/" name) bin))
                  '#$names))))

(define-public latchkey-agent/static
  (package
    (name "latchkey-agent-static")
    (version %version)
    (source %source)
    (build-system cargo-build-system)
    (arguments
     (list
      #:install-source? #f
      ;; The tests need Debian's clevis, tang and cryptsetup on 127.0.0.1
      ;; and QEMU; the project's CI runs them.
      #:tests? #f
      #:cargo-build-flags ''("--release" "-p" "latchkey-agent")
      #:phases
      #~(modify-phases %standard-phases
          (add-before 'configure 'link-statically
            (lambda _
              ;; Guix's Rust has glibc's target only; glibc's static
              ;; libraries make the binary self-contained for the initrd.
              (setenv "RUSTFLAGS" "-C target-feature=+crt-static")))
          (replace 'install #$(install-binaries "latchkey-agent")))))
    (native-inputs %crates)
    (inputs (list (list glibc "static")))
    (home-page "https://example.invalid/latchkey")
    (synopsis "Initrd agent that opens Clevis-bound LUKS volumes from Tang")
    (description
     "latchkey-agent runs in the initrd: it reads the Clevis bindings in the
LUKS headers, brings the network up when a binding needs it, recovers the
passphrase from one or more Tang servers (or a Shamir quorum of them), and
opens the volumes with device-mapper, with no cryptsetup, shell or curl.")
    (license (list license:expat license:asl2.0))))

(define-public latchkey
  (package
    (name "latchkey")
    (version %version)
    (source %source)
    (build-system cargo-build-system)
    (arguments
     (list
      #:install-source? #f
      #:tests? #f
      #:cargo-build-flags ''("--release" "-p" "latchkey" "-p" "tangd")
      #:phases
      #~(modify-phases %standard-phases
          (replace 'install #$(install-binaries "latchkey" "tangd"))
          (add-after 'install 'install-units
            (lambda* (#:key outputs #:allow-other-keys)
              (let* ((out (assoc-ref outputs "out"))
                     (units (string-append out "/lib/systemd/system")))
                (install-file "tangd/tangd.socket" units)
                (install-file "tangd/tangd.service" units)
                (substitute* (string-append units "/tangd.service")
                  (("/usr/bin/tangd") (string-append out "/bin/tangd")))))))))
    (native-inputs (cons pkg-config %crates))
    (inputs (list openssl))
    (home-page "https://example.invalid/latchkey")
    (synopsis "Network-Bound Disk Encryption tools compatible with Clevis and Tang")
    (description
     "latchkey encrypts and decrypts Clevis JWEs (Tang and Shamir pins) and
checks LUKS bindings; tangd is an asynchronous Tang server that serves
tang's key directory format byte for byte.")
    (license (list license:expat license:asl2.0))))
