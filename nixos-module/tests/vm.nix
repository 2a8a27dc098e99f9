# A NixOS VM test: `server` runs services.latchkey-tangd; `client` has a data
# disk bound to it with clevis, listed in boot.initrd.luks.devices, and boots
# with boot.initrd.latchkey. If the agent does not open the disk, NixOS'
# stage 1 waits on its passphrase prompt and the test times out.
#
#   nix build .#checks.x86_64-linux.nixos-scripted    (or nixos-systemd)
#   nix-build nixos-module/tests/vm.nix --arg pkgs 'import <nixpkgs> { }' --arg systemdStage1 true
#
# Needs Nix and KVM; `make test` does not run it (the machines that run
# `make test` have neither): it evaluates the module instead (tests/eval/run).
{
  pkgs,
  systemdStage1 ? false,
}:

let
  latchkey = pkgs.callPackage ../package.nix { };
  serverIp = "192.168.1.2";
  tangUrl = "http://${serverIp}:7654";

  # The server's keys, made ahead so that the disk can be bound at build time.
  tangKeys = pkgs.runCommand "latchkey-test-tang-keys" { nativeBuildInputs = [ latchkey ]; } ''
    tangd keygen $out
  '';

  # A LUKS2 image bound with the real clevis to the server's URL; the
  # advertisement comes from tangd on the build sandbox's loopback.
  boundDisk =
    pkgs.runCommand "latchkey-test-disk"
      {
        nativeBuildInputs = [
          latchkey
          pkgs.clevis
          pkgs.cryptsetup
          pkgs.curl
        ];
      }
      ''
        tangd serve --listen 127.0.0.1:7654 --keys ${tangKeys} &
        until curl -sf http://127.0.0.1:7654/adv >adv.jws; do sleep 0.1; done
        truncate -s 32M $out
        printf 'initial passphrase' >pass
        cryptsetup luksFormat -q --type luks2 --pbkdf pbkdf2 --pbkdf-force-iterations 1000 --key-file pass $out
        clevis luks bind -y -d $out -k pass tang '{"url":"${tangUrl}","adv":"adv.jws"}'
        kill %1
      '';
in
pkgs.testers.runNixOSTest {
  name = "latchkey-${if systemdStage1 then "systemd" else "scripted"}-stage-1";

  nodes.server =
    { ... }:
    {
      imports = [ ../. ];
      services.latchkey-tangd = {
        enable = true;
        openFirewall = true;
      };
      # The keys the disk was bound to.
      systemd.services.latchkey-tangd.serviceConfig.ExecStartPre = [
        "+${pkgs.writeShellScript "install-test-keys" ''
          install -d -o tang -g tang -m 0700 /var/db/tang
          for k in ${tangKeys}/*.jwk; do
            install -o tang -g tang -m 0440 "$k" /var/db/tang/
          done
        ''}"
      ];
    };

  nodes.client =
    { ... }:
    {
      imports = [ ../. ];
      virtualisation.qemu.options = [ "-drive file=${boundDisk},format=raw,if=virtio,snapshot=on" ];
      boot.initrd.systemd.enable = systemdStage1;
      boot.initrd.availableKernelModules = [ "virtio_net" ];
      boot.initrd.luks.devices.cryptdata.device = "/dev/vdb";
      boot.initrd.latchkey = {
        enable = true;
        deadline = 120;
        # eth1 is the test VLAN (eth0 is the driver's).
        network.ip = [ "192.168.1.1:::255.255.255.0::eth1:off" ];
        debug = true;
      };
    };

  testScript = ''
    server.start()
    server.wait_for_unit("latchkey-tangd.socket")
    server.wait_until_succeeds("curl -sf http://localhost:7654/adv")

    client.start()
    client.wait_for_unit("multi-user.target")
    client.succeed("test -b /dev/mapper/cryptdata")
    client.succeed("dmesg | grep -q 'volume cryptdata open'")

    # Rotation as an operator would run it: a new active pair, old keys hidden.
    server.succeed("latchkey-tangd-rotate")
    server.succeed("test $(ls /var/db/tang/.*.jwk | wc -l) -eq 2")
    server.succeed("test $(ls /var/db/tang/*.jwk | wc -l) -eq 2")
  '';
}
