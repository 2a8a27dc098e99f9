# Declarations of the NixOS options the latchkey module sets or reads, with
# the types nixpkgs gives them (nixos/modules/system/boot/stage-1.nix,
# luksroot.nix, initrd-network.nix, systemd/initrd.nix, nixos/lib/systemd-*.nix,
# config/users-groups.nix, services/networking/firewall.nix,
# misc/assertions.nix), reduced to the options used. Unit options keep
# nixpkgs' "systemd option" merge: all lists (repeatable) or one value.
#
# Also here: the systemd-stage-1 assertion of systemd/initrd.nix that the
# scripted-stage-1 options stay empty, so a module that writes them there
# fails these tests as it would fail a real build.
{
  lib,
  config,
  pkgs,
  ...
}:

let
  inherit (lib) mkOption types;

  # An option of `type` that is `default` when no module sets it.
  opt = type: default: mkOption { inherit type default; };

  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if builtins.isList (builtins.head defs').value then
        lib.concatMap (
          def:
          if builtins.isList def.value then
            def.value
          else
            throw "${lib.showOption loc}: systemd unit option definitions mix lists and non-lists"
        ) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  unitNames = opt (types.listOf types.str) [ ];

  commonUnitOptions =
    lib.genAttrs [
      "wantedBy"
      "requiredBy"
      "requires"
      "wants"
      "after"
      "before"
      "bindsTo"
      "partOf"
      "conflicts"
    ] (_: unitNames)
    // {
      enable = opt types.bool true;
      description = opt types.singleLineStr "";
      unitConfig = opt (types.attrsOf unitOption) { };
    };

  serviceOptions = commonUnitOptions // {
    serviceConfig = opt (types.attrsOf unitOption) { };
    path = opt (types.listOf (types.oneOf [ types.package types.str ])) [ ];
    environment = opt (types.attrsOf (
      types.nullOr (types.oneOf [ types.str types.path types.package ])
    )) { };
    script = opt types.lines "";
  };

  socketOptions = commonUnitOptions // {
    listenStreams = opt (types.listOf types.str) [ ];
    socketConfig = opt (types.attrsOf unitOption) { };
  };

  services = types.attrsOf (types.submodule { options = serviceOptions; });

  initrdStorePath = types.listOf (
    types.coercedTo (types.oneOf [
      types.singleLineStr
      types.package
    ]) (source: { inherit source; }) (types.submodule {
      options = {
        source = mkOption { type = types.path; };
        target = opt (types.nullOr types.path) null;
        enable = opt types.bool true;
      };
    })
  );

  initrdContents = types.attrsOf (
    types.submodule (
      { name, config, ... }:
      {
        options = {
          enable = opt types.bool true;
          target = opt (types.nullOr types.path) name;
          text = opt (types.nullOr types.lines) null;
          source = mkOption { type = types.path; };
        };
        config.source = lib.mkIf (config.text != null) (pkgs.writeText "initrd-${baseNameOf name}" config.text);
      }
    )
  );

  lines = opt types.lines "";
  # The scripted stage 1's shell hooks.
  scriptedCommands = [
    "preDeviceCommands"
    "preLVMCommands"
    "postDeviceCommands"
    "postMountCommands"
    "extraUtilsCommands"
    "extraUtilsCommandsTest"
  ];
  strings = opt (types.listOf types.str) [ ];

  luksDevice =
    { name, ... }:
    {
      options = {
        name = opt types.str name;
        device = mkOption { type = types.str; };
        header = opt (types.nullOr types.str) null;
        keyFile = opt (types.nullOr types.str) null;
        preLVM = opt types.bool true;
        allowDiscards = opt types.bool false;
        bypassWorkqueues = opt types.bool false;
        preOpenCommands = lines;
        postOpenCommands = lines;
        crypttabExtraOpts = opt (types.listOf types.singleLineStr) [ ];
      };
    };
in
{
  options = {
    assertions = opt (types.listOf types.unspecified) [ ];
    warnings = opt (types.listOf types.str) [ ];

    boot.kernelParams = mkOption {
      type = types.listOf (
        types.strMatching ''([^"[:space:]]|"[^"]*")+''
        // {
          name = "kernelParam";
        }
      );
      default = [ ];
    };

    boot.initrd = lib.genAttrs scriptedCommands (_: lines) // {
      kernelModules = strings;
      availableKernelModules = strings;
      extraFiles = mkOption {
        type = types.attrsOf (types.submodule { options.source = mkOption { type = types.package; }; });
        default = { };
      };
      luks.devices = opt (types.attrsOf (types.submodule luksDevice)) { };
      network.enable = opt types.bool false;
      systemd = {
        enable = opt types.bool false;
        network.enable = opt types.bool false;
        services = opt services { };
        storePaths = opt initrdStorePath [ ];
        contents = opt initrdContents { };
      };
    };

    systemd = {
      services = opt services { };
      sockets = mkOption {
        type = types.attrsOf (types.submodule { options = socketOptions; });
        default = { };
      };
      tmpfiles.rules = strings;
    };

    users.users = mkOption {
      type = types.attrsOf (
        types.submodule {
          options = {
            isSystemUser = opt types.bool false;
            group = opt types.str "";
            description = opt types.str "";
          };
        }
      );
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { options = { }; });
      default = { };
    };

    networking.firewall.allowedTCPPorts = opt (types.listOf types.port) [ ];

    environment.systemPackages = opt (types.listOf types.package) [ ];
  };

  config.assertions = lib.mkIf config.boot.initrd.systemd.enable (
    map
      (name: {
        assertion = config.boot.initrd.${name} == "";
        message = "systemd stage 1 does not support 'boot.initrd.${name}'.";
      })
      scriptedCommands
  );
}
