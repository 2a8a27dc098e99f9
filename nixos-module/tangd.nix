# services.latchkey-tangd: the Tang server, socket-activated or long-running.
#
# The sandbox is tangd/tangd.service's [Service] section, read at evaluation
# time, so the units installed by `make install` and these cannot drift; the
# module sets only what differs on NixOS (paths, user, state directory,
# listening sockets).
{
  config,
  lib,
  pkgs,
  ...
}:

let
  inherit (lib)
    literalExpression
    mkIf
    mkOption
    optionalAttrs
    types
    ;

  llib = import ./lib.nix { inherit lib; };
  cfg = config.services.latchkey-tangd;
  tangd = "${cfg.package}/bin/tangd";

  upstreamService = llib.parseUnit (builtins.readFile ../tangd/tangd.service);
  upstreamSocket = llib.parseUnit (builtins.readFile ../tangd/tangd.socket);

  sandbox = llib.sectionToConfig (
    builtins.removeAttrs upstreamService.Service llib.tangdOwnedSettings
  );

  # Under /var/lib, systemd creates the directory for a dynamic user at each
  # start (StateDirectory=) and fixes its ownership. Elsewhere (/var/db/tang,
  # where tang keeps keys on Fedora and in clevis' documentation) a static
  # `tang` user owns it, made by tmpfiles.
  dynamic = lib.hasPrefix "/var/lib/" cfg.keysDir;
  identity =
    if dynamic then
      {
        User = "tang";
        Group = "tang";
        DynamicUser = true;
        StateDirectory = lib.removePrefix "/var/lib/" cfg.keysDir;
        StateDirectoryMode = "0700";
      }
    else
      {
        User = "tang";
        Group = "tang";
        DynamicUser = false;
        ReadWritePaths = [ cfg.keysDir ];
      };

  ports = lib.unique (map llib.listenPort cfg.listenAddresses);
  # Without socket activation tangd binds itself, as an unprivileged user.
  privilegedPort = !cfg.socketActivation && builtins.any (p: p < 1024) ports;

  ipFilter = optionalAttrs (cfg.allowedIPs != null) {
    IPAddressDeny = "any";
    IPAddressAllow = cfg.allowedIPs;
  };

  serveArgs =
    [
      tangd
      "serve"
      "--keys"
      cfg.keysDir
    ]
    ++ lib.optionals (!cfg.socketActivation) (lib.concatMap (a: [ "--listen" a ]) cfg.listenAddresses)
    ++ cfg.extraArgs;

  rotate = pkgs.writeShellScriptBin "latchkey-tangd-rotate" ''
    set -eu
    # As the service's own user, so that tangd can read the new keys.
    systemctl start latchkey-tangd-rotate.service
    journalctl --no-pager --output=cat --unit=latchkey-tangd-rotate.service \
      _SYSTEMD_INVOCATION_ID="$(systemctl show --property=InvocationID --value latchkey-tangd-rotate.service)"
    echo "advertised signing keys (tangd reloads them within a second):"
    ${tangd} show-keys ${lib.escapeShellArg cfg.keysDir}
  '';
in
{
  options.services.latchkey-tangd = {
    enable = lib.mkEnableOption "tangd, latchkey's Tang server (a drop-in for tang, on tang's key directory format)";

    package = mkOption {
      type = types.package;
      default = pkgs.callPackage ./package.nix { };
      defaultText = literalExpression "pkgs.callPackage ./package.nix { }";
      description = "The package providing `bin/tangd`.";
    };

    listenAddresses = mkOption {
      type = types.listOf (types.strMatching "([0-9]+(\\.[0-9]+){3}|[[][0-9a-fA-F:.]+[]]):[0-9]+");
      default = [
        "0.0.0.0:7654"
        "[::]:7654"
      ];
      example = [ "192.0.2.5:80" ];
      description = ''
        `ADDRESS:PORT` pairs to serve on (IPv6 in brackets). IPv6 sockets are
        IPv6-only, so `0.0.0.0:P` and `[::]:P` go together. The default port
        is NixOS' tang module's.
      '';
    };

    keysDir = mkOption {
      type = types.strMatching "/.*[^/]";
      default = "/var/db/tang";
      example = "/var/lib/tang";
      description = ''
        The key directory (tang's format: one JWK per file). If it holds no
        active key when tangd starts, tangd creates a pair (mode 0440). Under
        `/var/lib/` it is a systemd state directory of a dynamic user;
        elsewhere it belongs to a static `tang` user.
      '';
    };

    socketActivation = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether systemd listens (`latchkey-tangd.socket`) and starts tangd on
        the first connection. Otherwise `latchkey-tangd.service` runs from
        boot and binds the addresses itself (with `CAP_NET_BIND_SERVICE` for a
        port below 1024).
      '';
    };

    openFirewall = mkOption {
      type = types.bool;
      default = false;
      description = "Whether to open the ports of {option}`listenAddresses` in the firewall.";
    };

    allowedIPs = mkOption {
      type = types.nullOr (types.listOf types.str);
      default = null;
      example = [ "192.0.2.0/24" ];
      description = "If set, only these address prefixes may connect (systemd's `IPAddressAllow=`).";
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [
        "--threads"
        "2"
      ];
      description = "More arguments to `tangd serve` (see tangd/README.md).";
    };
  };

  config = mkIf cfg.enable {
    assertions = [
      {
        assertion = cfg.listenAddresses != [ ];
        message = "services.latchkey-tangd.listenAddresses is empty: tangd would serve nothing.";
      }
      {
        assertion = !(builtins.elem 0 ports);
        message = "services.latchkey-tangd.listenAddresses: port 0 picks a random port, which no client can be told.";
      }
    ];

    environment.systemPackages = [
      cfg.package
      rotate
    ];

    users = mkIf (!dynamic) {
      users.tang = {
        isSystemUser = true;
        group = "tang";
        description = "Tang server";
      };
      groups.tang = { };
    };
    systemd.tmpfiles.rules = lib.optional (!dynamic) "d ${cfg.keysDir} 0700 tang tang - -";

    systemd.sockets.latchkey-tangd = mkIf cfg.socketActivation {
      description = "Tang server socket (tangd)";
      wantedBy = [ "sockets.target" ];
      listenStreams = cfg.listenAddresses;
      socketConfig =
        llib.sectionToConfig (builtins.removeAttrs upstreamSocket.Socket [ "ListenStream" ])
        // {
          BindIPv6Only = "ipv6-only";
        }
        // ipFilter;
    };

    systemd.services.latchkey-tangd = {
      description = "Tang server (tangd)";
      wantedBy = lib.optional (!cfg.socketActivation) "multi-user.target";
      requires = lib.optional cfg.socketActivation "latchkey-tangd.socket";
      after = [ "network.target" ] ++ lib.optional cfg.socketActivation "latchkey-tangd.socket";
      serviceConfig =
        sandbox
        // identity
        // ipFilter
        // {
          ExecStart = lib.escapeShellArgs serveArgs;
        }
        // optionalAttrs privilegedPort {
          CapabilityBoundingSet = "CAP_NET_BIND_SERVICE";
          AmbientCapabilities = "CAP_NET_BIND_SERVICE";
          # A capability held in a user namespace of its own does not count
          # for binding in the host's network namespace.
          PrivateUsers = false;
        };
    };

    # `latchkey-tangd-rotate`, or `systemctl start latchkey-tangd-rotate`:
    # a new pair first, then the old active keys hidden (still used for
    # /rec, so clients bound to them keep working until re-bound).
    systemd.services.latchkey-tangd-rotate = {
      description = "Rotate the Tang keys of tangd";
      serviceConfig =
        builtins.removeAttrs sandbox [
          "Restart"
          "RestartSec"
          "TimeoutStopSec"
          "LimitNOFILE"
        ]
        // identity
        // {
          Type = "oneshot";
          ExecStart = lib.escapeShellArgs [
            tangd
            "rotate"
            cfg.keysDir
          ];
        };
    };

    networking.firewall.allowedTCPPorts = lib.optionals cfg.openFirewall ports;
  };
}
