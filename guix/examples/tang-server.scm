;; A Tang server for the clients: tangd on port 7654 (IPv4 and IPv6), keys
;; in /var/db/tang, made at the first start.  `herd rotate-keys tangd'
;; rotates them.

(use-modules (gnu system)
             (gnu system file-systems)
             (gnu system shadow)
             (gnu bootloader)
             (gnu bootloader grub)
             (gnu services)
             (gnu services base)
             (gnu services networking)
             (latchkey services))

(operating-system
  (host-name "tang1")
  (timezone "Etc/UTC")
  (bootloader (bootloader-configuration
               (bootloader grub-bootloader)
               (targets '("/dev/sda"))))
  (file-systems (cons (file-system
                        (device (file-system-label "root"))
                        (mount-point "/")
                        (type "ext4"))
                      %base-file-systems))
  (users %base-user-accounts)
  (services (cons* (service dhcp-client-service-type)
                   (service tangd-service-type
                            (tangd-configuration
                             (listen-addresses '("0.0.0.0:7654" "[::]:7654"))
                             (keys-directory "/var/db/tang")))
                   %base-services)))
