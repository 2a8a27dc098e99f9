# latchkey for Nix: `latchkey` (the operator's tool) and `tangd`, built
# against nixpkgs' OpenSSL, plus the initrd agent as a static musl binary
# (pkgsStatic), installed where `make install` puts it and exposed as `.agent`.
{
  lib,
  rustPlatform,
  pkgsStatic,
  pkg-config,
  openssl,
}:

let
  root = ../.;

  # What cargo reads, and nothing else: editing the docs, the VM tests or the
  # packaging does not rebuild.
  cargoInputs = [
    "Cargo.toml"
    "Cargo.lock"
    "agent"
    "cli"
    "tangd"
    "crates"
  ];
  relative = path: lib.removePrefix (toString root + "/") (toString path);
  wanted = path: builtins.elem (builtins.head (lib.splitString "/" (relative path))) cargoInputs;

  common = {
    version = (lib.importTOML ../Cargo.toml).workspace.package.version;
    src = lib.cleanSourceWith {
      name = "latchkey-source";
      src = root;
      filter = path: _type: wanted path;
    };
    cargoLock.lockFile = ../Cargo.lock;
    # The tests need Debian's clevis, tang and cryptsetup on 127.0.0.1 and a
    # QEMU for the device-mapper parts; the project's CI runs them.
    doCheck = false;
    meta = {
      homepage = "https://example.invalid/latchkey";
      license = with lib.licenses; [
        mit
        asl20
      ];
      platforms = lib.platforms.linux;
    };
  };

  agent = pkgsStatic.rustPlatform.buildRustPackage (
    common
    // {
      pname = "latchkey-agent";
      cargoBuildFlags = [
        "-p"
        "latchkey-agent"
      ];
      meta = common.meta // {
        description = "Static initrd agent that opens Clevis-bound LUKS volumes from Tang";
        mainProgram = "latchkey-agent";
      };
    }
  );
in
rustPlatform.buildRustPackage (
  common
  // {
    pname = "latchkey";
    cargoBuildFlags = [
      "-p"
      "latchkey"
      "-p"
      "tangd"
    ];
    nativeBuildInputs = [ pkg-config ];
    buildInputs = [ openssl ];

    postInstall = ''
      install -D -m 0755 ${agent}/bin/latchkey-agent $out/lib/latchkey/latchkey-agent
      install -D -m 0644 tangd/tangd.socket $out/lib/systemd/system/tangd.socket
      install -D -m 0644 tangd/tangd.service $out/lib/systemd/system/tangd.service
      substituteInPlace $out/lib/systemd/system/tangd.service \
        --replace-fail /usr/bin/tangd $out/bin/tangd
    '';

    passthru = { inherit agent; };

    meta = common.meta // {
      description = "Network-Bound Disk Encryption: Clevis-compatible operator tool and Tang server";
      mainProgram = "latchkey";
    };
  }
)
