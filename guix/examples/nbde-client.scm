;; An NBDE client: the root file system is on a LUKS volume bound with
;; `clevis luks bind' (or `latchkey') to Tang servers.  At boot, the initrd
;; opens it with latchkey-agent; if the servers cannot be reached before the
;; deadline, and no local key is there, Guix asks for the passphrase as usual.
;;
;;   guix system reconfigure nbde-client.scm     (with the latchkey channel)

(use-modules (gnu system)
             (gnu system file-systems)
             (gnu system mapped-devices)
             (gnu system linux-initrd)
             (gnu system shadow)
             (gnu system uuid)
             (gnu bootloader)
             (gnu bootloader grub)
             (gnu services)
             (gnu services base)
             (gnu services networking)
             (latchkey mapped-devices))

(define cryptroot
  (mapped-device
   (source (uuid "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10"))
   (target "cryptroot")
   (type (latchkey-luks-device-mapping-with-options
          ;; The agent configures the NIC itself (default: DHCP on every NIC
          ;; with carrier, only if a binding needs the network).
          #:ip '("192.0.2.10::192.0.2.1:255.255.255.0::eth0:none")
          #:timeout 3                   ;one Tang request
          #:deadline 90                 ;then the passphrase prompt
          ;; Degraded mode: nbde/local-boot.key on the EFI system partition
          ;; (/boot/efi/nbde/local-boot.key here), used first when present.
          #:boot-device "UUID=1234-abcd"))))

(operating-system
  (host-name "nbde-client")
  (timezone "Etc/UTC")
  (bootloader (bootloader-configuration
               (bootloader grub-efi-bootloader)
               (targets '("/boot/efi"))))
  ;; The NIC's driver and AF_PACKET (DHCP) in the initrd, beside dm-crypt.
  ;; For clevis tpm2 bindings add "tpm_tis" and "tpm_crb" where the kernel
  ;; builds them as modules: the agent opens /dev/tpmrm0 and loads nothing.
  (initrd-modules (cons* "e1000e" "af_packet" "vfat" "nls_cp437"
                         %base-initrd-modules))
  (mapped-devices (list cryptroot))
  (file-systems (append
                 (list (file-system
                         (device "/dev/mapper/cryptroot")
                         (mount-point "/")
                         (type "ext4")
                         (dependencies (list cryptroot)))
                       (file-system
                         (device (uuid "1234-ABCD" 'fat))
                         (mount-point "/boot/efi")
                         (type "vfat")))
                 %base-file-systems))
  (users %base-user-accounts)
  (services (cons (service dhcp-client-service-type)
                  %base-services)))
