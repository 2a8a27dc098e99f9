;;; latchkey --- Network-Bound Disk Encryption (Clevis and Tang compatible)
;;;
;;; tangd-service-type: latchkey's Tang server under the Shepherd.
;;;
;;;   (service tangd-service-type
;;;            (tangd-configuration
;;;             (listen-addresses '("0.0.0.0:7654" "[::]:7654"))
;;;             (keys-directory "/var/db/tang")))
;;;
;;; By default the Shepherd listens (root may bind port 80) and hands the
;;; sockets to tangd, which runs as the unprivileged `tang' user on the first
;;; connection, as systemd's socket activation does.  The key directory is
;;; created (0700, owned by `tang') at activation; tangd makes the first key
;;; pair itself.  `herd rotate-keys tangd' rotates them.

(define-module (latchkey services)
  #:use-module (gnu services)
  #:use-module (gnu services shepherd)
  #:use-module (gnu system shadow)
  #:use-module (gnu packages admin)
  #:use-module (guix gexp)
  #:use-module (guix records)
  #:use-module (latchkey packages)
  #:use-module (ice-9 match)
  #:use-module (srfi srfi-1)
  #:export (tangd-configuration
            tangd-configuration?
            tangd-configuration-package
            tangd-configuration-listen-addresses
            tangd-configuration-keys-directory
            tangd-configuration-socket-activation?
            tangd-configuration-user
            tangd-configuration-group
            tangd-configuration-extra-arguments
            tangd-listen-address
            tangd-serve-arguments
            tangd-shepherd-service
            tangd-service-type))

(define-record-type* <tangd-configuration>
  tangd-configuration make-tangd-configuration
  tangd-configuration?
  (package            tangd-configuration-package
                      (default latchkey))
  (listen-addresses   tangd-configuration-listen-addresses ;list of "ADDR:PORT"
                      (default '("0.0.0.0:7654" "[::]:7654")))
  (keys-directory     tangd-configuration-keys-directory
                      (default "/var/db/tang"))
  (socket-activation? tangd-configuration-socket-activation?
                      (default #t))
  (user               tangd-configuration-user
                      (default "tang"))
  (group              tangd-configuration-group
                      (default "tang"))
  (extra-arguments    tangd-configuration-extra-arguments ;list of strings
                      (default '())))

(define (tangd-listen-address address)
  "Parse ADDRESS, \"A.B.C.D:PORT\" or \"[IPV6]:PORT\", into (FAMILY HOST
PORT) with FAMILY 'inet or 'inet6; raise an error naming ADDRESS otherwise."
  (define (bad why)
    (error (string-append "tangd-configuration: listen address \"" address
                          "\": " why)))
  (let* ((colon (or (string-rindex address #\:) (bad "no :PORT")))
         (host (substring address 0 colon))
         (port (string->number (substring address (+ colon 1)))))
    (unless (and (exact-integer? port) (< 0 port 65536))
      (bad "the port must be a number from 1 to 65535"))
    (cond ((and (string-prefix? "[" host) (string-suffix? "]" host)
                (false-if-exception
                 (inet-pton AF_INET6 (substring host 1 (- (string-length host) 1)))))
           (list 'inet6 (substring host 1 (- (string-length host) 1)) port))
          ((false-if-exception (inet-pton AF_INET host))
           (list 'inet host port))
          (else
           (bad "expected an IPv4 address or an IPv6 address in brackets")))))

(define (tangd-serve-arguments config)
  "The arguments of `tangd' (after the program name) for CONFIG, whose
listen addresses are checked here, so that a typo fails when the system is
built rather than at the first connection."
  (let ((addresses (tangd-configuration-listen-addresses config)))
    (when (null? addresses)
      (error "tangd-configuration: listen-addresses is empty"))
    (for-each tangd-listen-address addresses)
    (append (list "serve" "--keys" (tangd-configuration-keys-directory config))
            (if (tangd-configuration-socket-activation? config)
                '()                     ;the sockets come from the Shepherd
                (append-map (lambda (address) (list "--listen" address))
                            addresses))
            (tangd-configuration-extra-arguments config))))

(define (tangd-shepherd-service config)
  (let* ((tangd (file-append (tangd-configuration-package config) "/bin/tangd"))
         (command #~(cons #$tangd '#$(tangd-serve-arguments config)))
         (endpoints (map tangd-listen-address
                         (tangd-configuration-listen-addresses config)))
         (dir (tangd-configuration-keys-directory config))
         (user (tangd-configuration-user config))
         (group (tangd-configuration-group config)))
    (when (and (not (tangd-configuration-socket-activation? config))
               (any (match-lambda ((_ _ port) (< port 1024))) endpoints))
      (error "tangd-configuration: a port below 1024 needs socket-activation? #t \
(tangd runs as an unprivileged user and cannot bind it itself)"))
    (shepherd-service
     (documentation "Serve Tang's /adv and /rec (tangd).")
     (provision '(tangd))
     (requirement '(networking))
     (modules (cons '(ice-9 ftw) %default-modules))
     (start
      (if (tangd-configuration-socket-activation? config)
          #~(make-systemd-constructor
             #$command
             (map (match-lambda
                    (('inet host port)
                     (endpoint (make-socket-address AF_INET (inet-pton AF_INET host) port)))
                    (('inet6 host port)
                     ;; The Shepherd makes IPv6 endpoints IPv6-only (Guix's
                     ;; ssh service binds 0.0.0.0 and :: on one port too).
                     (endpoint (make-socket-address AF_INET6 (inet-pton AF_INET6 host) port))))
                  '#$endpoints)
             #:user #$user
             #:group #$group
             #:log-file "/var/log/tangd.log")
          #~(make-forkexec-constructor
             #$command
             #:user #$user
             #:group #$group
             #:log-file "/var/log/tangd.log")))
     (stop (if (tangd-configuration-socket-activation? config)
               #~(make-systemd-destructor)
               #~(make-kill-destructor)))
     (actions
      (list
       (shepherd-action
        (name 'rotate-keys)
        (documentation "Make a new key pair, then hide the old active keys
(kept for /rec, so bound clients keep working until re-bound).  tangd reloads
the directory within a second.")
        (procedure
         #~(lambda (running . _)
             (let ((status (system* #$tangd "rotate" #$dir))
                   (pw (getpwnam #$user)))
               ;; Made by root here: hand them to tangd's user.
               (for-each (lambda (file)
                           (chown (string-append #$dir "/" file)
                                  (passwd:uid pw) (passwd:gid pw)))
                         (scandir #$dir (lambda (f) (string-suffix? ".jwk" f))))
               (zero? status))))))))))

(define (tangd-accounts config)
  (let ((user (tangd-configuration-user config))
        (group (tangd-configuration-group config)))
    (list (user-group
           (name group)
           (system? #t))
          (user-account
           (name user)
           (group group)
           (system? #t)
           (comment "Tang server")
           (home-directory "/var/empty")
           (shell (file-append shadow "/sbin/nologin"))))))

(define (tangd-activation config)
  ;; The key directory, private to tangd's user; tangd creates the first key
  ;; pair in it when it finds none.
  #~(let ((dir #$(tangd-configuration-keys-directory config))
          (pw (getpwnam #$(tangd-configuration-user config))))
      (mkdir-p dir)
      (chown dir (passwd:uid pw) (passwd:gid pw))
      (chmod dir #o700)))

(define tangd-service-type
  (service-type
   (name 'tangd)
   (extensions
    (list (service-extension shepherd-root-service-type
                             (compose list tangd-shepherd-service))
          (service-extension account-service-type tangd-accounts)
          (service-extension activation-service-type tangd-activation)
          (service-extension profile-service-type
                             (compose list tangd-configuration-package))))
   (default-value (tangd-configuration))
   (description
    "Run tangd, latchkey's Tang server, on tang's key directory format.")))
