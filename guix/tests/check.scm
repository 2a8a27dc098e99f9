;;; The Guix channel's checks, with Debian's Guile and no Guix:
;;;  1. every file of guix/ (and .guix-channel) reads;
;;;  2. modules and examples compile against modules generated from
;;;     data/guix-exports.scm (what Guix exports, and its records' fields),
;;;     with Guile's unbound-variable, arity and format warnings as failures:
;;;     a module or binding that Guix does not have, or a record field it
;;;     does not know, fails here;
;;;  3. helpers.scm: the pure procedures, and the initrd code of the mapped
;;;     device run against a stand-in agent.
;;;
;;; guile --no-auto-compile -s check.scm TMPDIR

(use-modules (ice-9 match)
             (ice-9 ftw)
             (srfi srfi-1)
             (srfi srfi-26)
             (system base compile))

(define here (dirname (current-filename)))
(define channel (canonicalize-path (string-append here "/..")))
(define repo (canonicalize-path (string-append channel "/..")))
(define tmp (cadr (command-line)))

(load (string-append here "/reader.scm"))
(use-modules (latchkey-test reader))
(install-gexp-reader!)

(define passed 0)
(define failed 0)
(define (pass name)
  (set! passed (+ passed 1))
  (format #t "ok   ~a~%" name))
(define* (fail name #:optional detail)
  (set! failed (+ failed 1))
  (format #t "FAIL ~a~%" name)
  (when detail (format #t "     ~a~%" detail)))

(define (scheme-files dir)
  (map (cut string-append dir "/" <>)
       (or (scandir dir (cut string-suffix? ".scm" <>)) '())))

(define module-files (scheme-files (string-append channel "/modules/latchkey")))
(define example-files (scheme-files (string-append channel "/examples")))

;;; 1. Reading.

(for-each
 (lambda (file)
   (catch #t
     (lambda ()
       (let ((forms (read-all-forms file)))
         (pass (format #f "reads: ~a (~a forms)"
                       (string-drop file (+ 1 (string-length repo)))
                       (length forms)))))
     (lambda (key . args)
       (fail (format #f "reads: ~a" file) (format #f "~a ~s" key args)))))
 (append (list (string-append repo "/.guix-channel"))
         module-files example-files
         (scheme-files here)
         (list (string-append here "/data/guix-exports.scm"))))

(match (read-all-forms (string-append repo "/.guix-channel"))
  ((('channel ('version 0) ('directory dir)))
   (if (file-exists? (string-append repo "/" dir "/latchkey/packages.scm"))
       (pass ".guix-channel points at the modules")
       (fail ".guix-channel points at the modules" dir)))
  (other (fail ".guix-channel is (channel (version 0) (directory ...))" other)))

;;; 2. Stub modules from the Guix data, then compilation.

(define data (read-all-forms (string-append here "/data/guix-exports.scm")))
(define specials
  ;; Provided with behaviour by (latchkey-test stubs).
  '(gexp with-imported-modules with-extensions define-record-type*
    local-file file-append current-source-directory uuid uuid? uuid->string))

(define (write-stub-module name exports records)
  (let* ((file (string-append tmp "/stubs/" (string-join (map symbol->string name) "/") ".scm"))
         (record-names (map first records))
         (accessors (append-map third records))
         (plain (remove (lambda (n) (or (memq n specials) (memq n record-names) (memq n accessors)
                                        (eq? n 'define-public)))
                        exports)))
    (mkdir-p (dirname file))
    (call-with-output-file file
      (lambda (port)
        (write `(define-module ,name
                  #:use-module (latchkey-test stubs)
                  #:use-module ((guile) #:select ((define-public . core-define-public)))
                  #:re-export ,(filter (cut memq <> specials) exports)
                  #:replace ,(filter (cut eq? <> 'define-public) exports)
                  #:export ,(remove (lambda (n) (or (memq n specials) (eq? n 'define-public)))
                                    exports))
               port)
        (newline port)
        (when (memq 'define-public exports)
          ;; (guix packages) replaces define-public (to record locations).
          (write '(define-syntax-rule (define-public args ...) (core-define-public args ...)) port)
          (newline port))
        (for-each (match-lambda
                    ((ctor fields accessor-names)
                     (write `(define-stub-constructor ,ctor ,ctor ,fields '()) port)
                     (newline port)
                     (for-each (lambda (acc field)
                                 (when (memq acc exports)
                                   (write `(define ,acc (stub-accessor ',acc ',field)) port)
                                   (newline port)))
                               accessor-names
                               (take fields (length accessor-names)))))
                  records)
        (for-each (lambda (n)
                    (write `(define ,n (stub-value ',n)) port)
                    (newline port))
                  plain)))))

(define (mkdir-p dir)
  (unless (file-exists? dir)
    (mkdir-p (dirname dir))
    (mkdir dir)))

(define guix-commit
  (match (assq 'guix-commit data) ((_ commit) commit)))

(for-each (match-lambda
            (('module name ('exports exports ...) ('records records ...))
             (write-stub-module name exports records))
            (_ #t))
          data)

(mkdir-p (string-append tmp "/stubs/latchkey-test"))
(copy-file (string-append here "/stubs.scm") (string-append tmp "/stubs/latchkey-test/stubs.scm"))
(set! %load-path (cons* (string-append tmp "/stubs") (string-append channel "/modules") %load-path))
;; A name that two stub modules both define is one binding in Guix (a re-export).
(default-duplicate-binding-handler '(replace last))

(define %warnings '(unbound-variable arity-mismatch format duplicate-case-datum bad-case-datum))

(define (check-compiles file)
  (let* ((warnings (open-output-string))
         (name (string-drop file (+ 1 (string-length repo))))
         (ok (catch #t
               (lambda ()
                 (parameterize ((current-warning-port warnings))
                   (compile-file file
                                 #:output-file (string-append tmp "/out/" (basename file) ".go")
                                 #:opts `(#:warnings ,%warnings)))
                 #t)
               (lambda (key . args)
                 (format warnings "~a: ~s" key args)
                 #f)))
         (text (get-output-string warnings)))
    (if (and ok (string-null? text))
        (pass (format #f "compiles against Guix ~a's exports: ~a" (string-take guix-commit 12) name))
        (fail (format #f "compiles against Guix ~a's exports: ~a" (string-take guix-commit 12) name)
              text))))

(mkdir-p (string-append tmp "/out"))
(for-each check-compiles (append module-files example-files))

;;; 3. The procedures.

(define-syntax-rule (check name expr)
  (catch #t
    (lambda () (if expr (pass name) (fail name 'expr)))
    (lambda (key . args) (fail name (format #f "~a ~s" key args)))))

(define-syntax-rule (check-error name needle expr)
  (catch #t
    (lambda () expr (fail name "no error"))
    (lambda (key . args)
      (let ((text (format #f "~s" args)))
        (if (string-contains text needle)
            (pass name)
            (fail name (format #f "error without ~s: ~a" needle text)))))))

(define (equal-or-show got want)
  (or (equal? got want)
      (begin (format #t "     got:  ~s~%     want: ~s~%" got want) #f)))

;; Compiling a module registered it without evaluating its definitions:
;; load the channel's modules for real before using them.
(for-each (lambda (name) (reload-module (resolve-module name)))
          '((latchkey packages) (latchkey services) (latchkey mapped-devices)))
(load (string-append here "/helpers.scm"))

(format #t "guix: ~a passed, ~a failed~%" passed failed)
(exit (if (zero? failed) 0 1))
