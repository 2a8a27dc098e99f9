{
  description = "latchkey: Network-Bound Disk Encryption (Clevis and Tang compatible) in Rust";

  # Edition 2024 needs rustc 1.85 or later.
  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-25.05";

  outputs =
    { self, nixpkgs }:
    let
      system = "x86_64-linux";
      pkgs = nixpkgs.legacyPackages.${system};
      latchkey = pkgs.callPackage ./nixos-module/package.nix { };
    in
    {
      packages.${system} = {
        inherit latchkey;
        latchkey-agent = latchkey.agent;
        default = latchkey;
      };

      overlays.default = final: _prev: {
        latchkey = final.callPackage ./nixos-module/package.nix { };
      };

      nixosModules.default = ./nixos-module;

      # Boots VMs with Tang and LUKS: needs KVM (nix flake check).
      checks.${system} = {
        nixos-scripted = import ./nixos-module/tests/vm.nix {
          inherit pkgs;
          systemdStage1 = false;
        };
        nixos-systemd = import ./nixos-module/tests/vm.nix {
          inherit pkgs;
          systemdStage1 = true;
        };
      };
    };
}
