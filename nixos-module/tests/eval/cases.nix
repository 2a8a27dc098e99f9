# Evaluates the latchkey NixOS module with nixpkgs' module system for several
# configurations and checks what it generates. `run` (beside this file) prints
# the results and runs the generated scripted stage-1 shell.
#
# nix-instantiate --eval --strict --json cases.nix --arg nixpkgsLib /path/to/nixpkgs-lib
{
  nixpkgsLib,
  # The configuration block of README.md's "On NixOS" (extracted by `run`).
  readmeExample,
}:

let
  lib = import (nixpkgsLib + "/lib");
  llib = import ../../lib.nix { inherit lib; };
  repo = ../../..;

  # Stand-ins for the few nixpkgs builders the module calls: derivation-shaped
  # sets (types.package accepts them) that keep their inputs for inspection.
  fakeDrv =
    name: attrs:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
    }
    // attrs;
  rustPlatform = flavour: {
    buildRustPackage = args: fakeDrv "${flavour}-${args.pname}-${args.version}" ({ inherit args; } // args.passthru or { });
  };
  pkgs = {
    writeText = name: text: fakeDrv name { inherit text; };
    writeShellScriptBin = name: text: fakeDrv name { inherit text; };
    callPackage =
      fn: args:
      import fn (
        {
          inherit lib;
          rustPlatform = rustPlatform "dynamic";
          pkgsStatic.rustPlatform = rustPlatform "static";
          pkg-config = fakeDrv "pkg-config" { };
          openssl = fakeDrv "openssl" { };
        }
        // args
      );
  };
  package = pkgs.callPackage ../../package.nix { };
  agentBin = "${package.agent}/bin/latchkey-agent";
  tangdBin = "${package}/bin/tangd";

  eval =
    config:
    (lib.evalModules {
      modules = [
        ../../default.nix
        ./nixos-options.nix
        { _module.args.pkgs = pkgs; }
        config
      ];
    }).config;

  failed = c: map (a: a.message) (builtins.filter (a: !a.assertion) c.assertions);

  # Checks: each { name, ok, got, want }.
  eq = name: got: want: {
    inherit name got want;
    ok = got == want;
  };
  contains = name: hay: needle: {
    inherit name;
    got = hay;
    want = "text containing ${builtins.toJSON needle}";
    ok = lib.hasInfix needle hay;
  };
  lacks = name: hay: needle: {
    inherit name;
    got = hay;
    want = "text without ${builtins.toJSON needle}";
    ok = !(lib.hasInfix needle hay);
  };
  member = name: list: x: {
    inherit name;
    got = list;
    want = "a list with ${builtins.toJSON x}";
    ok = builtins.elem x list;
  };
  failsWith =
    name: c: needle:
    let
      msgs = failed c;
    in
    {
      inherit name;
      got = msgs;
      want = "a failed assertion containing ${builtins.toJSON needle}";
      ok = builtins.any (lib.hasInfix needle) msgs;
    };
  # A configuration the module system itself rejects (an option type).
  rejected =
    name: config:
    let
      r = builtins.tryEval (builtins.deepSeq (eval config).services.latchkey-tangd.listenAddresses true);
    in
    {
      inherit name;
      got = if r.success then "accepted" else "rejected";
      want = "rejected";
      ok = !r.success;
    };

  uuid = "0d3f1b52-7a37-4c2b-9b0e-3c1f5e2a9d10";
  luksDevices = {
    cryptroot.device = "/dev/disk/by-uuid/${lib.toUpper uuid}";
    data = {
      device = "/dev/vg/data";
      preLVM = false;
      allowDiscards = true;
    };
    detached = {
      device = "/dev/sdz1";
      header = "/boot/detached.hdr";
    };
  };

  scripted = eval {
    boot.initrd.luks.devices = luksDevices;
    boot.initrd.latchkey = {
      enable = true;
      timeout = 3;
      deadline = 90;
      network.ip = [ "dhcp" ];
      network.nameservers = [ "192.0.2.53" ];
    };
  };

  systemd = eval {
    boot.initrd.systemd.enable = true;
    boot.initrd.luks.devices = builtins.removeAttrs luksDevices [ "data" ];
    boot.initrd.latchkey = {
      enable = true;
      deadline = 2.5;
      debug = true;
    };
  };
  systemdUnit = systemd.boot.initrd.systemd.services.latchkey-agent;

  systemdNetworkd = eval {
    boot.initrd.systemd.enable = true;
    boot.initrd.systemd.network.enable = true;
    boot.initrd.luks.devices.cryptroot.device = "/dev/vda2";
    boot.initrd.latchkey.enable = true;
  };

  localKey = eval {
    boot.initrd.luks.devices.cryptroot.device = "/dev/vda2";
    boot.initrd.latchkey = {
      enable = true;
      localKey = {
        enable = true;
        bootDevice = "/dev/disk/by-uuid/ABCD-1234";
        path = "/boot/keys/local.key";
      };
    };
  };

  explicit = eval {
    boot.initrd.luks.devices = luksDevices;
    boot.initrd.latchkey = {
      enable = true;
      devices = [
        "/dev/disk/by-uuid/${uuid}"
        "11111111-2222-3333-4444-555555555555"
      ];
    };
  };
  explicitBad = eval {
    boot.initrd.luks.devices = luksDevices;
    boot.initrd.latchkey = {
      enable = true;
      devices = [
        "detached"
        "/dev/sdq9"
        "not a device"
      ];
    };
  };

  discovery = eval {
    boot.initrd.systemd.enable = true;
    boot.initrd.latchkey.enable = true;
  };

  noBootDevice = eval {
    boot.initrd.latchkey = {
      enable = true;
      localKey.enable = true;
    };
  };
  promptWithSystemd = eval {
    boot.initrd.systemd.enable = true;
    boot.initrd.latchkey = {
      enable = true;
      prompt = true;
    };
  };
  timeoutPastDeadline = eval {
    boot.initrd.latchkey = {
      enable = true;
      timeout = 90;
    };
  };
  disabled = eval { boot.initrd.luks.devices = luksDevices; };

  upstreamService = llib.parseUnit (builtins.readFile (repo + "/tangd/tangd.service"));
  upstreamSocket = llib.parseUnit (builtins.readFile (repo + "/tangd/tangd.socket"));

  tangd = eval { services.latchkey-tangd.enable = true; };
  tangdService = tangd.systemd.services.latchkey-tangd;
  tangdSocket = tangd.systemd.sockets.latchkey-tangd;

  tangdBound = eval {
    services.latchkey-tangd = {
      enable = true;
      socketActivation = false;
      keysDir = "/var/lib/tang";
      listenAddresses = [
        "0.0.0.0:80"
        "[::]:80"
        "[::1]:8080"
      ];
      openFirewall = true;
      allowedIPs = [ "192.0.2.0/24" ];
      extraArgs = [
        "--threads"
        "2"
      ];
    };
  };
  tangdBoundService = tangdBound.systemd.services.latchkey-tangd;

  tangdEmpty = eval {
    services.latchkey-tangd = {
      enable = true;
      listenAddresses = [ ];
    };
  };

  readme = eval (import readmeExample);

  filter = package.args.src.filter;
  at = rel: "${toString repo}/${rel}";
in
{
  "scripted stage 1" = [
    (eq "no failed assertion" (failed scripted) [ ])
    (eq "kernel options carry the settings" scripted.boot.kernelParams [
      "latchkey.timeout=3"
      "latchkey.deadline=90"
      "ip=dhcp"
      "nameserver=192.0.2.53"
    ])
    (eq "pre-LVM crypttab: by-uuid becomes UUID=, the NixOS name is kept"
      scripted.boot.initrd.extraFiles."/etc/latchkey/crypttab-pre-lvm".source.text
      "cryptroot UUID=${uuid} none luks\n"
    )
    (eq "post-LVM crypttab: LUKS on LVM, discard passed on"
      scripted.boot.initrd.extraFiles."/etc/latchkey/crypttab-post-lvm".source.text
      "data /dev/vg/data none luks,discard\n"
    )
    (contains "the static agent is copied into extra-utils" scripted.boot.initrd.extraUtilsCommands
      "copy_bin_and_libs /nix/store/00000000000000000000000000000000-static-latchkey-agent-0.1.0/bin/latchkey-agent"
    )
    (contains "extra-utils' self-test runs it" scripted.boot.initrd.extraUtilsCommandsTest
      "$out/bin/latchkey-agent --version"
    )
    (contains "preLVMCommands run the agent on the pre-LVM crypttab" scripted.boot.initrd.preLVMCommands
      "if ! latchkey-agent unlock --crypttab /etc/latchkey/crypttab-pre-lvm; then"
    )
    (lacks "it owns the console prompt in scripted stage 1" scripted.boot.initrd.preLVMCommands "--no-prompt")
    (contains "postDeviceCommands run it again after the LVM scan" scripted.boot.initrd.postDeviceCommands
      "latchkey-agent unlock --crypttab /etc/latchkey/crypttab-post-lvm;"
    )
    (contains "luksroot's open step is skipped for a volume the agent opened"
      scripted.boot.initrd.luks.devices.cryptroot.preOpenCommands
      "if [ -e /dev/mapper/cryptroot ]; then"
    )
    (eq "a detached-header volume is left to NixOS" scripted.boot.initrd.luks.devices.detached.preOpenCommands "")
    (eq "no systemd unit in scripted stage 1" scripted.boot.initrd.systemd.services { })
    (member "dm-crypt is loaded" scripted.boot.initrd.kernelModules "dm_crypt")
    (member "AF_PACKET is loaded for DHCP" scripted.boot.initrd.kernelModules "af_packet")
    (member "the TPM drivers are in the initrd" scripted.boot.initrd.availableKernelModules "tpm_tis")
    (member "the firmware TPM's driver too" scripted.boot.initrd.availableKernelModules "tpm_crb")
    (eq "no bash, curl, jose or clevis in the initrd"
      (builtins.filter (
        w: lib.hasInfix w (scripted.boot.initrd.extraUtilsCommands + builtins.toJSON scripted.boot.initrd.systemd.storePaths)
      ) [ "bash" "curl" "jose" "clevis" "cryptsetup" ])
      [ ]
    )
  ];

  "systemd stage 1" = [
    (eq "no failed assertion (scripted-only options stay empty)" (failed systemd) [ ])
    (eq "no preLVMCommands" systemd.boot.initrd.preLVMCommands "")
    (eq "no extra-utils" systemd.boot.initrd.extraUtilsCommands "")
    (eq "preOpenCommands untouched" systemd.boot.initrd.luks.devices.cryptroot.preOpenCommands "")
    (eq "the agent binary is a store path of the initrd" (map (p: p.source) systemd.boot.initrd.systemd.storePaths) [
      agentBin
    ])
    (eq "crypttab for the agent" systemd.boot.initrd.systemd.contents."/etc/latchkey/crypttab".text
      "cryptroot UUID=${uuid} none luks\n"
    )
    (eq "ExecStart: the agent itself, no shell, no prompt" systemdUnit.serviceConfig.ExecStart
      "${agentBin} unlock --crypttab /etc/latchkey/crypttab --no-prompt"
    )
    (eq "ordered before cryptsetup-pre.target" systemdUnit.before [ "cryptsetup-pre.target" ])
    (eq "and pulls it in" systemdUnit.wants [ "cryptsetup-pre.target" ])
    (eq "started by initrd.target" systemdUnit.wantedBy [ "initrd.target" ])
    (eq "no default dependencies" systemdUnit.unitConfig.DefaultDependencies false)
    (eq "oneshot, stays active" [ systemdUnit.serviceConfig.Type systemdUnit.serviceConfig.RemainAfterExit ] [
      "oneshot"
      true
    ])
    (eq "exit 1 (some volume locked) is not a failure" systemdUnit.serviceConfig.SuccessExitStatus 1)
    (eq "start timeout: deadline + 60 s" systemdUnit.serviceConfig.TimeoutStartSec 63)
    (eq "kernel options" systemd.boot.kernelParams [
      "latchkey.deadline=2.5"
      "latchkey.debug"
    ])
    (eq "with systemd-networkd it waits for the network" systemdNetworkd.boot.initrd.systemd.services.latchkey-agent.after [
      "systemd-udev-trigger.service"
      "systemd-modules-load.service"
      "network-online.target"
    ])
  ];

  "local key" = [
    (eq "no failed assertion" (failed localKey) [ ])
    (eq "boot partition and key path on the command line" localKey.boot.kernelParams [
      "latchkey.boot=UUID=abcd-1234"
      "latchkey.key=/boot/keys/local.key"
    ])
    (member "vfat for the boot partition" localKey.boot.initrd.kernelModules "vfat")
    (member "its code page" localKey.boot.initrd.kernelModules "nls_cp437")
  ];

  "devices" = [
    (eq "no failed assertion" (failed explicit) [ ])
    (eq "a by-uuid path selects its NixOS entry; a lone UUID opens as luks-UUID"
      explicit.boot.initrd.extraFiles."/etc/latchkey/crypttab-pre-lvm".source.text
      "cryptroot UUID=${uuid} none luks\nluks-11111111-2222-3333-4444-555555555555 UUID=11111111-2222-3333-4444-555555555555 none luks\n"
    )
    (eq "unlisted volumes keep NixOS' step" explicit.boot.initrd.luks.devices.data.preOpenCommands "")
    (eq "no post-LVM run when nothing needs it" explicit.boot.initrd.postDeviceCommands "")
    (failsWith "a detached header is refused" explicitBad "detached has a detached LUKS header")
    (failsWith "a /dev path with no NixOS name is refused" explicitBad "/dev/sdq9 is not the device of any")
    (failsWith "nonsense is refused" explicitBad "\"not a device\" is neither")
    (eq "with no LUKS devices the agent discovers (empty crypttab)" discovery.boot.initrd.systemd.contents."/etc/latchkey/crypttab".text "")
    (eq "and warns that nothing prompts" discovery.warnings [
      "boot.initrd.latchkey: no boot.initrd.luks.devices and no prompt: a volume the agent cannot open is not asked for at all."
    ])
    (eq "disabled: nothing is added" [
      disabled.boot.kernelParams
      disabled.boot.initrd.preLVMCommands
      disabled.boot.initrd.luks.devices.cryptroot.preOpenCommands
    ] [ [ ] "" "" ])
  ];

  "impossible combinations" = [
    (failsWith "local key without a boot device" noBootDevice "needs boot.initrd.latchkey.localKey.bootDevice")
    (failsWith "agent prompt with systemd stage 1" promptWithSystemd "cannot be used with boot.initrd.systemd.enable")
    (failsWith "timeout past the deadline" timeoutPastDeadline "is longer than the deadline (60 s)")
    (failsWith "tangd with nothing to listen on" tangdEmpty "listenAddresses is empty")
    (rejected "a host name is not a listen address" {
      services.latchkey-tangd = {
        enable = true;
        listenAddresses = [ "localhost:80" ];
      };
    })
  ];

  "tangd, socket-activated, /var/db/tang" = [
    (eq "no failed assertion" (failed tangd) [ ])
    (eq "systemd listens on both families" tangdSocket.listenStreams [
      "0.0.0.0:7654"
      "[::]:7654"
    ])
    (eq "IPv6 sockets are IPv6-only, so both binds succeed" tangdSocket.socketConfig.BindIPv6Only "ipv6-only")
    (eq "tangd.socket's settings are kept" [ tangdSocket.socketConfig.Backlog tangdSocket.socketConfig.Accept ] (
      map (k: builtins.head upstreamSocket.Socket.${k}) [
        "Backlog"
        "Accept"
      ]
    ))
    (eq "socket started at boot" tangdSocket.wantedBy [ "sockets.target" ])
    (eq "tangd takes the sockets from systemd" tangdService.serviceConfig.ExecStart "${tangdBin} serve --keys /var/db/tang")
    (eq "the service is started by its socket" [ tangdService.wantedBy tangdService.requires ] [
      [ ]
      [ "latchkey-tangd.socket" ]
    ])
    (eq "every setting of tangd/tangd.service is carried over" (builtins.filter (
      k:
      tangdService.serviceConfig.${k} or null
      != (llib.sectionToConfig upstreamService.Service).${k}
    ) (builtins.attrNames (builtins.removeAttrs upstreamService.Service llib.tangdOwnedSettings))) [ ])
    (eq "the sandbox is read from the file (two SystemCallFilter lines)" tangdService.serviceConfig.SystemCallFilter [
      "@system-service"
      "~@privileged @resources"
    ])
    (eq "a static tang user owns /var/db/tang" [
      tangdService.serviceConfig.User
      tangdService.serviceConfig.DynamicUser
      tangdService.serviceConfig.ReadWritePaths
      tangd.users.users.tang.isSystemUser
    ] [ "tang" false [ "/var/db/tang" ] true ])
    (eq "tmpfiles makes it 0700" tangd.systemd.tmpfiles.rules [ "d /var/db/tang 0700 tang tang - -" ])
    (eq "keys are 0440 (UMask)" tangdService.serviceConfig.UMask "0337")
    (eq "firewall closed by default" tangd.networking.firewall.allowedTCPPorts [ ])
    (eq "rotation as the same user, oneshot" (
      let
        s = tangd.systemd.services.latchkey-tangd-rotate.serviceConfig;
      in
      [
        s.ExecStart
        s.Type
        s.User
        (s ? Restart)
      ]
    ) [ "${tangdBin} rotate /var/db/tang" "oneshot" "tang" false ])
    (contains "a rotate command for the operator" (
      lib.concatMapStrings (p: p.text or "") tangd.environment.systemPackages
    ) "systemctl start latchkey-tangd-rotate.service")
  ];

  "tangd, long-running, /var/lib/tang" = [
    (eq "no failed assertion" (failed tangdBound) [ ])
    (eq "no socket unit" tangdBound.systemd.sockets { })
    (eq "tangd binds the addresses itself" tangdBoundService.serviceConfig.ExecStart
      "${tangdBin} serve --keys /var/lib/tang --listen 0.0.0.0:80 --listen '[::]:80' --listen '[::1]:8080' --threads 2"
    )
    (eq "started at boot" tangdBoundService.wantedBy [ "multi-user.target" ])
    (eq "port 80 as an unprivileged user" [
      tangdBoundService.serviceConfig.AmbientCapabilities
      tangdBoundService.serviceConfig.CapabilityBoundingSet
      tangdBoundService.serviceConfig.PrivateUsers
    ] [ "CAP_NET_BIND_SERVICE" "CAP_NET_BIND_SERVICE" false ])
    (eq "a dynamic user with a state directory, created on first start" [
      tangdBoundService.serviceConfig.DynamicUser
      tangdBoundService.serviceConfig.StateDirectory
      tangdBoundService.serviceConfig.StateDirectoryMode
    ] [ true "tang" "0700" ])
    (eq "no static user, no tmpfiles" [ tangdBound.users.users tangdBound.systemd.tmpfiles.rules ] [ { } [ ] ])
    (eq "firewall opens each port once" tangdBound.networking.firewall.allowedTCPPorts [
      80
      8080
    ])
    (eq "address filter" [
      tangdBoundService.serviceConfig.IPAddressDeny
      tangdBoundService.serviceConfig.IPAddressAllow
    ] [ "any" [ "192.0.2.0/24" ] ])
    (eq "rotation shares the state directory" tangdBound.systemd.services.latchkey-tangd-rotate.serviceConfig.StateDirectory "tang")
  ];

  "README example" = [
    (eq "no failed assertion" (failed readme) [ ])
    (eq "no warning" readme.warnings [ ])
    (eq "its settings on the kernel command line" readme.boot.kernelParams [
      "latchkey.timeout=3"
      "latchkey.deadline=90"
      "latchkey.boot=UUID=abcd-1234"
      "ip=192.0.2.10::192.0.2.1:255.255.255.0::eth0:none"
    ])
    (eq "its root volume in the agent's crypttab"
      readme.boot.initrd.extraFiles."/etc/latchkey/crypttab-pre-lvm".source.text
      "cryptroot UUID=${uuid} none luks\n"
    )
    (eq "tangd on 7654, firewall open" readme.networking.firewall.allowedTCPPorts [ 7654 ])
  ];

  "package" = [
    (eq "version from the workspace" package.args.version (lib.importTOML (repo + "/Cargo.toml")).workspace.package.version)
    (eq "the agent is built by pkgsStatic (musl)" package.agent.name "static-latchkey-agent-0.1.0")
    (eq "only the agent crate for it" package.agent.args.cargoBuildFlags [ "-p" "latchkey-agent" ])
    (eq "latchkey and tangd in the main package" package.args.cargoBuildFlags [ "-p" "latchkey" "-p" "tangd" ])
    (contains "the agent lands where make install puts it" package.args.postInstall "$out/lib/latchkey/latchkey-agent")
    (eq "Cargo.lock pins the crates" (builtins.pathExists package.args.cargoLock.lockFile) true)
    (eq "the source holds what cargo reads and nothing else" (
      map (rel: filter (at rel) "regular") [
        "Cargo.toml"
        "Cargo.lock"
        "agent/src/main.rs"
        "crates/proto/Cargo.toml"
        "tangd/tangd.service"
        "target/release/tangd"
        "fuzz/Cargo.toml"
        "nixos-module/initrd.nix"
        "README.md"
      ]
    ) [ true true true true true false false false false ])
    (eq "every workspace member is in the source" (
      builtins.filter (m: !(filter (at m) "directory")) (lib.importTOML (repo + "/Cargo.toml")).workspace.members
    ) [ ])
  ];

  # For `run`: the generated stage-1 shell to execute, and the units as
  # NixOS writes them (systemd-lib's attrsToSection), for systemd-analyze.
  shell = {
    scriptedPreLvm = scripted.boot.initrd.preLVMCommands;
    scriptedPostLvm = scripted.boot.initrd.postDeviceCommands;
    skipCryptroot = scripted.boot.initrd.luks.devices.cryptroot.preOpenCommands;
    units =
      let
        toOption = x: if x == true then "true" else if x == false then "false" else toString x;
        section =
          name: attrs:
          "[${name}]\n"
          + lib.concatStrings (
            lib.mapAttrsToList (
              k: v: lib.concatMapStrings (x: "${k}=${toOption x}\n") (if builtins.isList v then v else [ v ])
            ) attrs
          );
        unitSection =
          u:
          section "Unit" (
            {
              Description = u.description;
            }
            // lib.filterAttrs (_: v: v != [ ]) {
              Wants = u.wants;
              Requires = u.requires;
              Before = u.before;
              After = u.after;
            }
            // u.unitConfig
          );
        service = u: unitSection u + "\n" + section "Service" u.serviceConfig;
        socket =
          u:
          unitSection u
          + "\n"
          + section "Socket" (
            {
              ListenStream = u.listenStreams;
            }
            // u.socketConfig
          );
      in
      [
        {
          dir = "initrd";
          name = "latchkey-agent.service";
          text = service systemdUnit;
        }
        {
          dir = "tangd-socket";
          name = "latchkey-tangd.socket";
          text = socket tangdSocket;
        }
        {
          dir = "tangd-socket";
          name = "latchkey-tangd.service";
          text = service tangdService;
        }
        {
          dir = "tangd-socket";
          name = "latchkey-tangd-rotate.service";
          text = service tangd.systemd.services.latchkey-tangd-rotate;
        }
        {
          dir = "tangd-bound";
          name = "latchkey-tangd.service";
          text = service tangdBoundService;
        }
      ];
    binaries = [
      agentBin
      tangdBin
    ];
  };
}
