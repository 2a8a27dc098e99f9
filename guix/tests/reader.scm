;;; The gexp reader syntax of (guix gexp), for reading Guix and channel files
;;; without Guix: #~x reads as (gexp x), #$x as (ungexp x), #$@x as
;;; (ungexp-splicing x), #+x as (ungexp-native x), #+@x as
;;; (ungexp-native-splicing x) -- the forms Guix's own reader produces.

(define-module (latchkey-test reader)
  #:export (install-gexp-reader!
            read-all-forms))

(define (install-gexp-reader!)
  (define (ungexp native?)
    (lambda (chr port)
      (let ((splicing? (eqv? (peek-char port) #\@)))
        (when splicing? (read-char port))
        (list (if native?
                  (if splicing? 'ungexp-native-splicing 'ungexp-native)
                  (if splicing? 'ungexp-splicing 'ungexp))
              (read port)))))
  (read-hash-extend #\~ (lambda (chr port) (list 'gexp (read port))))
  (read-hash-extend #\$ (ungexp #f))
  (read-hash-extend #\+ (ungexp #t)))

(define (read-all-forms file)
  "Every top-level form of FILE, read as Guile reads a module's source."
  (call-with-input-file file
    (lambda (port)
      (set-port-filename! port file)
      (let loop ((forms '()))
        (let ((form (read port)))
          (if (eof-object? form)
              (reverse forms)
              (loop (cons form forms))))))))
