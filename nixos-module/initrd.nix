# boot.initrd.latchkey: latchkey-agent in stage 1, scripted or systemd.
#
#   boot.initrd.luks.devices ─┐
#   boot.initrd.latchkey      ├─▶ /etc/latchkey/crypttab* + latchkey.* kernel options
#                             └─▶ scripted: preLVMCommands / postDeviceCommands run the agent,
#                                 preOpenCommands skip what it opened
#                                 systemd:  latchkey-agent.service, Before=cryptsetup-pre.target
#
# The agent is one static binary: no clevis, jose, curl, cryptsetup or shell
# is added to the initrd for it. It brings the network up itself, only when a
# binding needs it, from `ip=` or by DHCP on every NIC with carrier.
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    attrValues
    concatMap
    filter
    filterAttrs
    literalExpression
    mkIf
    mkMerge
    mkOption
    mkOrder
    optional
    types
    ;

  llib = import ./lib.nix { inherit lib; };
  cfg = config.boot.initrd.latchkey;
  luks = config.boot.initrd.luks.devices;
  systemdStage1 = config.boot.initrd.systemd.enable;
  agent = "${cfg.package}/bin/latchkey-agent";

  # How a user names a device in `devices`: a boot.initrd.luks.devices name,
  # or a spec the agent reads (UUID, LABEL=, /dev path).
  entrySpec = e: if luks ? ${e} then llib.agentDeviceSpec luks.${e}.device else llib.agentDeviceSpec e;

  # True when boot.initrd.luks.devices.NAME (with `dev` its settings) is one
  # the agent opens.
  selects =
    name: dev:
    let
      spec = llib.agentDeviceSpec dev.device;
    in
    if cfg.devices == [ ] then
      dev.header == null && spec != null
    else
      builtins.any (e: e == name || (spec != null && llib.agentDeviceSpec e == spec)) cfg.devices;

  managedLuks = filterAttrs selects luks;

  # `devices` entries that are no boot.initrd.luks.devices entry nor the
  # device of one: the agent opens them under its own name, luks-UUID.
  standalone = filter (
    e: !(luks ? ${e}) && !(builtins.any (d: llib.agentDeviceSpec d.device == entrySpec e) (attrValues luks))
  ) cfg.devices;

  volume = name: dev: {
    inherit name;
    spec = llib.agentDeviceSpec dev.device;
    options = llib.luksOptions dev;
    preLVM = dev.preLVM or true;
  };

  volumes =
    lib.mapAttrsToList volume managedLuks
    ++ map (e: {
      name = llib.defaultName (entrySpec e);
      spec = entrySpec e;
      options = [ "luks" ];
      preLVM = true;
    }) (filter (e: entrySpec e != null && lib.hasPrefix "UUID=" (entrySpec e)) standalone);

  # Scripted stage 1 opens LUKS-on-LVM volumes (preLVM = false) after the LVM
  # scan: the agent runs a second time there for those.
  preLvmVolumes = filter (v: v.preLVM) volumes;
  postLvmVolumes = filter (v: !v.preLVM) volumes;
  discovery = volumes == [ ];

  problems =
    concatMap (
      e:
      if luks ? ${e} then
        optional (luks.${e}.header != null)
          "boot.initrd.latchkey.devices: ${e} has a detached LUKS header (boot.initrd.luks.devices.${e}.header), which latchkey-agent does not read."
        ++ optional (entrySpec e == null)
          "boot.initrd.latchkey.devices: the device of ${e}, ${builtins.toJSON luks.${e}.device}, is no path or UUID latchkey-agent can find."
      else if entrySpec e == null then
        [ "boot.initrd.latchkey.devices: ${builtins.toJSON e} is neither a boot.initrd.luks.devices name, a UUID, LABEL=… nor a /dev path." ]
      else
        optional (builtins.elem e standalone && !(lib.hasPrefix "UUID=" (entrySpec e)))
          "boot.initrd.latchkey.devices: ${e} is not the device of any boot.initrd.luks.devices entry, so it has no /dev/mapper name; declare it there, or give its LUKS UUID (opened as luks-UUID)."
    ) cfg.devices
    ++ concatMap (
      v:
      optional (builtins.match "[^/[:space:]]+" v.name == null)
        "boot.initrd.luks.devices.${builtins.toJSON v.name}: latchkey-agent needs a mapping name without spaces or '/'."
    ) volumes;

  seconds = types.addCheck types.number (x: x > 0) // {
    description = "positive number of seconds";
  };
in
{
  options.boot.initrd.latchkey = {
    enable = lib.mkEnableOption ''
      latchkey-agent in the initrd: LUKS volumes bound with `clevis luks bind`
      (Tang, Shamir) are opened without a passphrase, before NixOS' own
      cryptsetup step asks for whatever is still locked'';

    package = mkOption {
      type = types.package;
      default = (pkgs.callPackage ./package.nix { }).agent;
      defaultText = literalExpression "(pkgs.callPackage ./package.nix { }).agent";
      description = "The package whose `bin/latchkey-agent` (a static binary) goes into the initrd.";
    };

    devices = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "cryptroot"
        "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10"
      ];
      description = ''
        Which LUKS devices the agent opens: names of
        {option}`boot.initrd.luks.devices` entries, their devices (a
        `/dev/disk/by-uuid/…` path or another /dev path), or LUKS UUIDs.

        Empty (the default): every {option}`boot.initrd.luks.devices` entry
        (except those with a detached header), under the same
        `/dev/mapper` name, so NixOS' own step finds them open and prompts
        only for the rest. With no {option}`boot.initrd.luks.devices` at all,
        every device with a clevis binding, as `/dev/mapper/luks-UUID`.
        A UUID that no {option}`boot.initrd.luks.devices` entry has is opened
        as `/dev/mapper/luks-UUID`.
      '';
    };

    timeout = mkOption {
      type = types.nullOr seconds;
      default = null;
      example = 3;
      description = "Seconds for one Tang request (`latchkey.timeout=`); null: the agent's default, ${toString llib.agentDefaults.timeout} s.";
    };

    deadline = mkOption {
      type = types.nullOr seconds;
      default = null;
      example = 120;
      description = ''
        Seconds after which the agent stops trying (`latchkey.deadline=`);
        null: the agent's default, ${toString llib.agentDefaults.deadline} s.
        NixOS' passphrase prompt comes after it, for the volumes still locked.
      '';
    };

    promptDelay = mkOption {
      type = types.nullOr (types.addCheck types.number (x: x >= 0));
      default = null;
      example = 0;
      description = ''
        Seconds before the agent's own console prompt joins the race
        (`latchkey.prompt-delay=`); null: the agent's default,
        ${toString llib.agentDefaults.promptDelay} s. Only with {option}`prompt`.
      '';
    };

    prompt = mkOption {
      type = types.bool;
      default = !systemdStage1;
      defaultText = literalExpression "!config.boot.initrd.systemd.enable";
      description = ''
        Whether the agent asks for the passphrase on the console itself,
        after {option}`promptDelay`, while Tang is still being tried. Scripted
        stage 1 only: with systemd in stage 1, systemd-cryptsetup asks once
        the agent is done.
      '';
    };

    localKey = {
      enable = lib.mkEnableOption ''
        degraded mode: before any network, the agent tries the key file
        {option}`localKey.path` on the partition {option}`localKey.bootDevice`
        (mounted read-only for the read). The file must be a passphrase of a
        keyslot (`cryptsetup luksAddKey DEVICE /boot/nbde/local-boot.key`);
        anyone who can read that partition can then open the volume, so remove
        the file and the keyslot once the Tang servers are back'';

      bootDevice = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "/dev/disk/by-uuid/ABCD-1234";
        description = ''
          The unencrypted partition that holds the key file, as
          `/dev/disk/by-uuid/…`, `UUID=…`, `LABEL=…` or a /dev path
          (`latchkey.boot=`).
        '';
      };

      path = mkOption {
        type = types.strMatching "/[^[:space:]]*";
        default = llib.agentDefaults.keyFile;
        description = ''
          The key file as the running system sees it, with the partition
          mounted on /boot (`latchkey.key=`).
        '';
      };

      fsType = mkOption {
        type = types.enum [
          "vfat"
          "ext4"
          "ext3"
          "ext2"
          "xfs"
          "btrfs"
        ];
        default = "vfat";
        description = "File system of {option}`localKey.bootDevice`; its kernel modules are loaded in the initrd.";
      };
    };

    network = {
      ip = mkOption {
        type = types.listOf (types.strMatching "[^[:space:]]+");
        default = [ ];
        example = [ "192.0.2.10::192.0.2.1:255.255.255.0::eth0:none" ];
        description = ''
          `ip=` kernel options for the agent (dracut's and the kernel's
          syntax: `dhcp`, `eth0:dhcp`, or
          `CLIENT:PEER:GATEWAY:NETMASK:HOSTNAME:IFACE:none[:DNS0[:DNS1]]`).
          Empty: DHCP on every NIC with carrier, and only when a binding
          needs the network. Add the NIC's driver to
          {option}`boot.initrd.availableKernelModules`.
        '';
      };

      nameservers = mkOption {
        type = types.listOf (types.strMatching "[0-9a-fA-F.:]+");
        default = [ ];
        example = [ "192.0.2.53" ];
        description = "`nameserver=` kernel options, for Tang URLs with host names and no DNS from DHCP.";
      };
    };

    debug = lib.mkEnableOption "more log lines from the agent (`latchkey.debug`)";
  };

  # Extends luksroot.nix's device submodule: a volume the agent opened is
  # skipped by the scripted stage-1 cryptsetup step.
  options.boot.initrd.luks.devices = mkOption {
    type = types.attrsOf (
      types.submodule (
        { name, config, ... }:
        {
          config.preOpenCommands = mkIf (cfg.enable && !systemdStage1 && selects name config) (
            lib.mkBefore (llib.scriptedSkipOpened name)
          );
        }
      )
    );
  };

  config = mkIf cfg.enable (mkMerge [
    {
      assertions =
        [
          {
            assertion = cfg.localKey.enable -> cfg.localKey.bootDevice != null;
            message = ''
              boot.initrd.latchkey.localKey.enable needs boot.initrd.latchkey.localKey.bootDevice:
              the unencrypted partition that holds ${cfg.localKey.path} (e.g. "/dev/disk/by-uuid/ABCD-1234").
              A key file inside the initrd would be in the world-readable Nix store.'';
          }
          {
            assertion = cfg.localKey.bootDevice != null -> llib.agentDeviceSpec cfg.localKey.bootDevice != null;
            message = "boot.initrd.latchkey.localKey.bootDevice = ${builtins.toJSON cfg.localKey.bootDevice}: expected /dev/disk/by-uuid/…, UUID=…, LABEL=… or a /dev path.";
          }
          {
            assertion = cfg.localKey.enable -> lib.hasPrefix "/boot/" cfg.localKey.path;
            message = "boot.initrd.latchkey.localKey.path = ${cfg.localKey.path}: the key file must be under /boot, where the boot partition is mounted.";
          }
          {
            assertion =
              cfg.timeout == null || cfg.timeout <= (if cfg.deadline == null then llib.agentDefaults.deadline else cfg.deadline);
            message = "boot.initrd.latchkey.timeout (${toString cfg.timeout} s) is longer than the deadline (${
              toString (if cfg.deadline == null then llib.agentDefaults.deadline else cfg.deadline)
            } s): one Tang request could never finish.";
          }
          {
            assertion = !(cfg.prompt && systemdStage1);
            message = ''
              boot.initrd.latchkey.prompt cannot be used with boot.initrd.systemd.enable: the agent
              would fight systemd's password agents for the console. Leave it off; systemd-cryptsetup
              asks for the volumes the agent could not open.'';
          }
        ]
        ++ map (m: {
          assertion = false;
          message = m;
        }) problems;

      warnings =
        optional (cfg.promptDelay != null && !cfg.prompt)
          "boot.initrd.latchkey.promptDelay has no effect while boot.initrd.latchkey.prompt is off."
        ++ optional (discovery && luks == { } && !cfg.prompt)
          "boot.initrd.latchkey: no boot.initrd.luks.devices and no prompt: a volume the agent cannot open is not asked for at all.";

      boot.kernelParams = llib.kernelParams cfg;

      # The agent loads no modules itself. dm-crypt is requested by the kernel
      # when the agent creates the table; the boot partition's file system and
      # AF_PACKET (for DHCP) are loaded up front.
      boot.initrd.kernelModules =
        [
          "dm_mod"
          "dm_crypt"
          "af_packet"
        ]
        ++ lib.optionals cfg.localKey.enable (
          if cfg.localKey.fsType == "vfat" then
            [
              "vfat"
              "nls_cp437"
              "nls_iso8859-1"
            ]
          else
            [ cfg.localKey.fsType ]
        );
      # udev loads the TPM drivers (tpm2 bindings open /dev/tpmrm0) where the
      # machine has a TPM.
      boot.initrd.availableKernelModules = [
        "tpm_tis"
        "tpm_crb"
        "aes"
        "xts"
        "sha256"
        "sha512"
        "cbc"
        "essiv"
      ];
    }

    (mkIf (!systemdStage1) {
      boot.initrd.extraUtilsCommands = ''
        copy_bin_and_libs ${agent}
      '';
      boot.initrd.extraUtilsCommandsTest = ''
        $out/bin/latchkey-agent --version
      '';
      boot.initrd.extraFiles = {
        ${llib.crypttabPath "pre-lvm"}.source = pkgs.writeText "latchkey-crypttab-pre-lvm" (llib.crypttabText preLvmVolumes);
      } // lib.optionalAttrs (postLvmVolumes != [ ]) {
        ${llib.crypttabPath "post-lvm"}.source = pkgs.writeText "latchkey-crypttab-post-lvm" (llib.crypttabText postLvmVolumes);
      };
      # After boot.initrd.network's setup (mkBefore), whose network the agent
      # then uses as it is; before luksroot.nix's cryptsetup commands.
      boot.initrd.preLVMCommands = mkOrder 600 (llib.scriptedRun {
        crypttab = llib.crypttabPath "pre-lvm";
        inherit (cfg) prompt;
      });
      boot.initrd.postDeviceCommands = mkIf (postLvmVolumes != [ ]) (
        mkOrder 600 (llib.scriptedRun {
          crypttab = llib.crypttabPath "post-lvm";
          inherit (cfg) prompt;
        })
      );
    })

    (mkIf systemdStage1 {
      boot.initrd.systemd.storePaths = [ agent ];
      boot.initrd.systemd.contents.${llib.crypttabPath null}.text = llib.crypttabText volumes;
      boot.initrd.systemd.services.latchkey-agent = {
        description = "Unlock LUKS volumes with latchkey (Tang / Clevis)";
        wantedBy = [ "initrd.target" ];
        # systemd.special(7): units that must run before any volume is set up
        # pull in cryptsetup-pre.target and order themselves before it.
        wants = [ "cryptsetup-pre.target" ] ++ optional config.boot.initrd.systemd.network.enable "network-online.target";
        before = [ "cryptsetup-pre.target" ];
        after = [
          "systemd-udev-trigger.service"
          "systemd-modules-load.service"
        ]
        # With systemd-networkd in stage 1, the agent finds the network up and leaves it alone.
        ++ optional config.boot.initrd.systemd.network.enable "network-online.target";
        unitConfig.DefaultDependencies = false;
        serviceConfig = {
          Type = "oneshot";
          RemainAfterExit = true;
          ExecStart = lib.escapeShellArgs (
            [ agent ]
            ++ llib.agentArgs {
              crypttab = llib.crypttabPath null;
              prompt = false;
            }
          );
          # Exit 1: some volume is still locked; systemd-cryptsetup asks for it.
          SuccessExitStatus = 1;
          # The agent stops itself at the deadline; this is only a backstop.
          TimeoutStartSec = builtins.ceil ((if cfg.deadline == null then llib.agentDefaults.deadline else cfg.deadline) + 60);
          StandardOutput = "journal+console";
          StandardError = "journal+console";
        };
      };
    })
  ]);
}
