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

  unitNames = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };

  commonUnitOptions = {
    enable = mkOption {
      type = types.bool;
      default = true;
    };
    description = mkOption {
      type = types.singleLineStr;
      default = "";
    };
    wantedBy = unitNames;
    requiredBy = unitNames;
    requires = unitNames;
    wants = unitNames;
    after = unitNames;
    before = unitNames;
    bindsTo = unitNames;
    partOf = unitNames;
    conflicts = unitNames;
    unitConfig = mkOption {
      type = types.attrsOf unitOption;
      default = { };
    };
  };

  serviceOptions = commonUnitOptions // {
    serviceConfig = mkOption {
      type = types.attrsOf unitOption;
      default = { };
    };
    path = mkOption {
      type = types.listOf (types.oneOf [ types.package types.str ]);
      default = [ ];
    };
    environment = mkOption {
      type = types.attrsOf (types.nullOr (types.oneOf [ types.str types.path types.package ]));
      default = { };
    };
    script = mkOption {
      type = types.lines;
      default = "";
    };
  };

  socketOptions = commonUnitOptions // {
    listenStreams = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    socketConfig = mkOption {
      type = types.attrsOf unitOption;
      default = { };
    };
  };

  services = types.attrsOf (types.submodule { options = serviceOptions; });

  initrdStorePath = types.listOf (
    types.coercedTo (types.oneOf [
      types.singleLineStr
      types.package
    ]) (source: { inherit source; }) (types.submodule {
      options = {
        source = mkOption { type = types.path; };
        target = mkOption {
          type = types.nullOr types.path;
          default = null;
        };
        enable = mkOption {
          type = types.bool;
          default = true;
        };
      };
    })
  );

  initrdContents = types.attrsOf (
    types.submodule (
      { name, config, ... }:
      {
        options = {
          enable = mkOption {
            type = types.bool;
            default = true;
          };
          target = mkOption {
            type = types.nullOr types.path;
            default = name;
          };
          text = mkOption {
            type = types.nullOr types.lines;
            default = null;
          };
          source = mkOption { type = types.path; };
        };
        config.source = lib.mkIf (config.text != null) (pkgs.writeText "initrd-${baseNameOf name}" config.text);
      }
    )
  );

  lines = mkOption {
    type = types.lines;
    default = "";
  };
  strings = mkOption {
    type = types.listOf types.str;
    default = [ ];
  };

  luksDevice =
    { name, ... }:
    {
      options = {
        name = mkOption {
          type = types.str;
          default = name;
        };
        device = mkOption { type = types.str; };
        header = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        keyFile = mkOption {
          type = types.nullOr types.str;
          default = null;
        };
        preLVM = mkOption {
          type = types.bool;
          default = true;
        };
        allowDiscards = mkOption {
          type = types.bool;
          default = false;
        };
        bypassWorkqueues = mkOption {
          type = types.bool;
          default = false;
        };
        preOpenCommands = lines;
        postOpenCommands = lines;
        crypttabExtraOpts = mkOption {
          type = types.listOf types.singleLineStr;
          default = [ ];
        };
      };
    };
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };

    boot.kernelParams = mkOption {
      type = types.listOf (
        types.strMatching ''([^"[:space:]]|"[^"]*")+''
        // {
          name = "kernelParam";
        }
      );
      default = [ ];
    };

    boot.initrd = {
      kernelModules = strings;
      availableKernelModules = strings;
      extraUtilsCommands = lines;
      extraUtilsCommandsTest = lines;
      preDeviceCommands = lines;
      preLVMCommands = lines;
      postDeviceCommands = lines;
      postMountCommands = lines;
      extraFiles = mkOption {
        type = types.attrsOf (types.submodule { options.source = mkOption { type = types.package; }; });
        default = { };
      };
      luks.devices = mkOption {
        type = types.attrsOf (types.submodule luksDevice);
        default = { };
      };
      network.enable = mkOption {
        type = types.bool;
        default = false;
      };
      systemd = {
        enable = mkOption {
          type = types.bool;
          default = false;
        };
        network.enable = mkOption {
          type = types.bool;
          default = false;
        };
        services = mkOption {
          type = services;
          default = { };
        };
        storePaths = mkOption {
          type = initrdStorePath;
          default = [ ];
        };
        contents = mkOption {
          type = initrdContents;
          default = { };
        };
      };
    };

    systemd = {
      services = mkOption {
        type = services;
        default = { };
      };
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
            isSystemUser = mkOption {
              type = types.bool;
              default = false;
            };
            group = mkOption {
              type = types.str;
              default = "";
            };
            description = mkOption {
              type = types.str;
              default = "";
            };
          };
        }
      );
      default = { };
    };
    users.groups = mkOption {
      type = types.attrsOf (types.submodule { options = { }; });
      default = { };
    };

    networking.firewall.allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
    };

    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
  };

  config.assertions = lib.mkIf config.boot.initrd.systemd.enable (
    map
      (name: {
        assertion = config.boot.initrd.${name} == "";
        message = "systemd stage 1 does not support 'boot.initrd.${name}'.";
      })
      [
        "preDeviceCommands"
        "preLVMCommands"
        "postDeviceCommands"
        "postMountCommands"
        "extraUtilsCommands"
        "extraUtilsCommandsTest"
      ]
  );
}
