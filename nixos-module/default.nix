# The NixOS module of latchkey (the flake's nixosModules.default):
#   boot.initrd.latchkey        latchkey-agent in stage 1 (scripted or systemd)
#   services.latchkey-tangd     the Tang server
{
  imports = [
    ./initrd.nix
    ./tangd.nix
  ];
}
