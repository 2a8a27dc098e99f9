;;; Small stand-ins for what the channel uses of Guix, so that Debian's Guile
;;; can compile and run it: the gexp syntax (a gexp becomes the S-expression
;;; it stands for, ungexps evaluated), define-record-type* and record
;;; constructors that reject unknown fields at expansion time, local-file,
;;; file-append, current-source-directory. Every other Guix binding is a
;;; procedure that returns the call it received, as code: (NAME 'ARG ...).
;;; guix/tests/run generates one module per Guix module from
;;; data/guix-exports.scm on top of this one.

(define-module (latchkey-test stubs)
  #:use-module (ice-9 match)
  #:use-module (srfi srfi-1)
  #:use-module (srfi srfi-9)
  #:export (gexp
            with-imported-modules
            with-extensions
            define-record-type*
            define-stub-constructor
            make-stub-record
            stub-record?
            stub-record-type
            stub-ref
            stub-value
            stub-accessor
            local-file
            %local-file
            file-append
            current-source-directory
            uuid
            uuid?
            uuid->string))

(define-syntax gexp
  (lambda (s)
    (define (walk x)
      (syntax-case x (ungexp ungexp-splicing ungexp-native ungexp-native-splicing)
        ((ungexp e) #'(unquote e))
        ((ungexp-native e) #'(unquote e))
        ((ungexp-splicing e) #'(unquote-splicing e))
        ((ungexp-native-splicing e) #'(unquote-splicing e))
        ((a . b) #`(#,(walk #'a) . #,(walk #'b)))
        (other #'other)))
    (syntax-case s ()
      ((_ e) #`(quasiquote #,(walk #'e))))))

(define-syntax-rule (with-imported-modules modules body ...)
  (begin body ...))
(define-syntax-rule (with-extensions extensions body ...)
  (begin body ...))

;;; Records.

(define-record-type <stub-record>
  (%make-stub-record type fields)
  stub-record?
  (type stub-record-type)
  (fields stub-record-fields))          ;alist, with 'inherit and defaults

(define (make-stub-record type allowed given defaults)
  (for-each (match-lambda
              (('inherit . _) #t)
              ((field . _)
               (unless (memq field allowed)
                 (error "stub: unknown field" type field))))
            given)
  (%make-stub-record type (append given defaults)))

(define (stub-ref record field accessor)
  (let loop ((fields (stub-record-fields record)))
    (match (assq field fields)
      ((_ . value) value)
      (#f (match (assq 'inherit fields)
            ((_ . (? stub-record? base)) (loop (stub-record-fields base)))
            (_ (error "stub: field not set" (stub-record-type record) field accessor)))))))

(define (stub-value name)
  "A Guix binding without behaviour: a procedure returning its call as code."
  (let ((proc (lambda args
                (cons name (map (lambda (arg) (list 'quote arg)) args)))))
    (set-procedure-property! proc 'name name)
    proc))

(define (stub-accessor accessor field)
  (lambda (record)
    (if (stub-record? record)
        (stub-ref record field accessor)
        ;; An accessor applied to a stub value, such as the open procedure of
        ;; luks-device-mapping: a procedure named after both.
        (stub-value (symbol-append (or (procedure-name record) 'value) '/ accessor)))))

(define-syntax define-stub-constructor
  ;; (define-stub-constructor CTOR TYPE (FIELD ...) ((DEFAULT-FIELD . THUNK) ...))
  (lambda (s)
    (syntax-case s ()
      ((_ ctor type (field ...) defaults)
       #'(define-syntax ctor
           (lambda (x)
             (define allowed '(field ...))
             (syntax-case x ()
               ((_ clause (... ...))
                (with-syntax (((pair (... ...))
                               (map (lambda (c)
                                      (syntax-case c ()
                                        ((f v)
                                         (let ((name (syntax->datum #'f)))
                                           (unless (or (eq? name 'inherit) (memq name allowed))
                                             (syntax-violation 'ctor "unknown field" x c))
                                           #'(cons 'f v)))
                                        (_ (syntax-violation 'ctor "expected (FIELD VALUE)" x c))))
                                    #'(clause (... ...)))))
                  #'(make-stub-record 'type '(field ...) (list pair (... ...))
                                      (map (lambda (d) (cons (car d) ((cdr d)))) defaults)))))))))))

(define-syntax define-record-type*
  ;; (define-record-type* <type> CTOR MAKER PRED (FIELD ACCESSOR SPEC ...) ...)
  (lambda (s)
    (define (default-of specs)
      (let loop ((specs specs))
        (syntax-case specs (default)
          (((default e) . _) #'e)
          ((_ . rest) (loop #'rest))
          (() #f))))
    (syntax-case s ()
      ((_ type ctor maker pred (field accessor spec ...) ...)
       (with-syntax ((((dfield . dexpr) ...)
                      (filter-map (lambda (f specs)
                                    (let ((e (default-of specs)))
                                      (and e (cons f e))))
                                  #'(field ...) #'((spec ...) ...))))
         #'(begin
             (define-stub-constructor ctor type (field ...)
               (list (cons 'dfield (lambda () dexpr)) ...))
             (define (pred x)
               (and (stub-record? x) (eq? (stub-record-type x) 'type)))
             (define (maker . args)
               (error "stub: positional record maker" 'maker))
             (define accessor (stub-accessor 'accessor 'field)) ...))))))

;;; Files.

(define-syntax current-source-directory
  (lambda (s)
    (syntax-case s ()
      ((_)
       (let* ((file (assq-ref (or (syntax-source s) '()) 'filename))
              ;; As Guix does: a file loaded through %load-path may be named
              ;; relative to its entry.
              (file (and file
                         (if (string-prefix? "/" file)
                             file
                             (or (search-path %load-path file) file)))))
         (datum->syntax s (and file (dirname (canonicalize-path file)))))))))

(define* (%local-file file #:optional name #:key recursive? select?)
  (make-stub-record 'local-file '(file name recursive? select?)
                    `((file . ,file) (name . ,name)
                      (recursive? . ,recursive?) (select? . ,select?))
                    '()))

(define-syntax local-file
  (lambda (s)
    (syntax-case s ()
      ((_ file rest ...)
       #'(%local-file (canonicalize-path
                       (string-append (current-source-directory) "/" file))
                      rest ...)))))

(define (store-name thing)
  (cond ((string? thing) thing)
        ((and (stub-record? thing)
              (assq 'name (stub-record-fields thing)))
         (string-append "/gnu/store/00000000000000000000000000000000-"
                        (stub-ref thing 'name 'name)))
        (else "/gnu/store/00000000000000000000000000000000-stub")))

(define (file-append thing . suffixes)
  (apply string-append (store-name thing) suffixes))

;;; (gnu system uuid)

(define-record-type <uuid>
  (make-uuid string type)
  uuid?
  (string uuid->string)
  (type uuid-type))

(define* (uuid string #:optional (type 'dce))
  (make-uuid string type))
