# Pure helpers of the NixOS module: how NixOS device names become the
# agent's crypttab lines and kernel options, the stage-1 shell snippets, and
# the reading of tangd's own systemd units. No `pkgs`, no `config`: the
# evaluation tests call these directly.
{ lib }:

let
  inherit (lib)
    concatMapStrings
    concatStringsSep
    escapeShellArg
    filter
    hasPrefix
    optional
    optionals
    removePrefix
    toLower
    ;

  uuidRegex = "[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}";
in
rec {
  # The agent's built-in defaults (agent/src/cmdline.rs), for documentation
  # and for the systemd start timeout only: the module passes an option on the
  # command line only when it is set.
  agentDefaults = {
    deadline = 60;
    timeout = 5;
    promptDelay = 10;
    keyFile = "/boot/nbde/local-boot.key";
  };

  # Where the generated crypttabs live in the initrd.
  crypttabPath = phase: "/etc/latchkey/crypttab${lib.optionalString (phase != null) "-${phase}"}";

  isUuid = s: builtins.match uuidRegex s != null;

  # A device as the agent names it (crypttab field 2, `latchkey.boot=`):
  # `UUID=` and `LABEL=` are found by reading the devices' headers, with no
  # udev; a /dev path is compared after resolving symlinks. PARTUUID= and
  # PARTLABEL= are not matched by the agent, so those stay udev paths.
  # Returns null for something that is none of these.
  agentDeviceSpec =
    s:
    let
      byUuid = removePrefix "/dev/disk/by-uuid/" s;
      byLabel = removePrefix "/dev/disk/by-label/" s;
    in
    if hasPrefix "UUID=" s then
      "UUID=${toLower (removePrefix "luks-" (removePrefix "UUID=" s))}"
    else if hasPrefix "LABEL=" s && builtins.match ".*[[:space:]].*" s == null then
      s
    else if isUuid s || isUuid (removePrefix "luks-" s) then
      "UUID=${toLower (removePrefix "luks-" s)}"
    else if byUuid != s && byUuid != "" && builtins.match ".*/.*" byUuid == null then
      "UUID=${toLower byUuid}"
    # udev escapes anything unusual in labels (\x20 for a space): keep the path then.
    else if byLabel != s && !(lib.hasInfix "/" byLabel) && !(lib.hasInfix "\\" byLabel) then
      "LABEL=${byLabel}"
    else if hasPrefix "/dev/" s && builtins.match ".*[[:space:]].*" s == null then
      s
    else
      null;

  # The mapping name the agent gives a volume it finds by UUID alone, as
  # systemd-cryptsetup-generator and dracut name it.
  defaultName = spec: "luks-${removePrefix "UUID=" spec}";

  # crypttab(5) options the agent honours, from boot.initrd.luks.devices.<name>.
  luksOptions =
    dev:
    [ "luks" ]
    ++ optional (dev.allowDiscards or false) "discard"
    ++ optionals (dev.bypassWorkqueues or false) [
      "no-read-workqueue"
      "no-write-workqueue"
    ];

  crypttabLine = v: "${v.name} ${v.spec} none ${concatStringsSep "," v.options}\n";
  crypttabText = vols: concatMapStrings crypttabLine vols;

  seconds = builtins.toJSON;

  # The kernel command-line options that carry the module's settings: the
  # agent reads them from /proc/cmdline in both stage-1 flavours, so one
  # boot-menu edit (e.g. `latchkey.debug`) overrides them.
  kernelParams =
    cfg:
    optional (cfg.timeout != null) "latchkey.timeout=${seconds cfg.timeout}"
    ++ optional (cfg.deadline != null) "latchkey.deadline=${seconds cfg.deadline}"
    ++ optional (cfg.promptDelay != null) "latchkey.prompt-delay=${seconds cfg.promptDelay}"
    ++ optionals cfg.localKey.enable (
      [ "latchkey.boot=${agentDeviceSpec cfg.localKey.bootDevice}" ]
      ++ optional (cfg.localKey.path != agentDefaults.keyFile) "latchkey.key=${cfg.localKey.path}"
    )
    ++ map (ip: "ip=${ip}") cfg.network.ip
    ++ map (ns: "nameserver=${ns}") cfg.network.nameservers
    ++ optional cfg.debug "latchkey.debug";

  # The agent's argv in stage 1 (after the binary).
  agentArgs =
    { crypttab, prompt }:
    [
      "unlock"
      "--crypttab"
      crypttab
    ]
    ++ optional (!prompt) "--no-prompt";

  # Scripted stage 1: one run of the agent. It never stops the boot: what it
  # could not open, NixOS's own cryptsetup step asks for just after.
  scriptedRun =
    { crypttab, prompt }:
    ''
      # latchkey: open LUKS volumes from Tang (or the local key) before the prompts below.
      if ! latchkey-agent ${concatStringsSep " " (map escapeShellArg (agentArgs { inherit crypttab prompt; }))}; then
        echo "latchkey: not every volume could be opened automatically (reasons above); asking for the rest"
      fi
    '';

  # Scripted stage 1, inside boot.initrd.luks.devices.<name>.preOpenCommands:
  # luksroot.nix defines open_normally (and open_with_hardware) just before
  # these commands and calls one of them just after, and `cryptsetup luksOpen`
  # of an active mapping fails and would loop on the passphrase prompt. A
  # volume the agent opened is therefore skipped here.
  scriptedSkipOpened = name: ''
    if [ -e ${escapeShellArg "/dev/mapper/${name}"} ]; then
      open_normally() { echo ${escapeShellArg "${name} was opened by latchkey"}; }
      open_with_hardware() { open_normally; }
    fi
  '';

  # A systemd unit file as a set of sections, each a set of keys, each a list
  # of values in file order (SystemCallFilter= appears twice in tangd.service).
  # Comments, blank lines and [Install] are dropped; continuation lines are not
  # used by our units and are rejected.
  parseUnit =
    text:
    let
      lines = filter (l: l != "" && !(hasPrefix "#" l) && !(hasPrefix ";" l)) (
        map lib.trim (lib.splitString "\n" text)
      );
      step =
        acc: line:
        let
          section = builtins.match "[[]([A-Za-z]+)[]]" line;
          kv = builtins.match "([A-Za-z0-9]+)=(.*)" line;
        in
        if section != null then
          acc // { current = builtins.head section; }
        else if kv != null && !(lib.hasSuffix "\\" line) then
          let
            key = builtins.elemAt kv 0;
            value = builtins.elemAt kv 1;
            sec = acc.sections.${acc.current} or { };
          in
          acc
          // {
            sections = acc.sections // {
              ${acc.current} = sec // {
                ${key} = (sec.${key} or [ ]) ++ [ value ];
              };
            };
          }
        else
          throw "cannot read the unit line ${builtins.toJSON line}";
      parsed = builtins.foldl' step {
        current = null;
        sections = { };
      } lines;
    in
    builtins.removeAttrs parsed.sections [ "Install" ];

  # The settings of tangd/tangd.service's [Service] that the tangd module sets
  # itself; it keeps everything else as the file has it.
  tangdOwnedSettings = [
    "ExecStart"
    "User"
    "Group"
    "DynamicUser"
    "StateDirectory"
    "StateDirectoryMode"
  ];

  # A parsed section as NixOS unit options: single values stay scalars.
  sectionToConfig = lib.mapAttrs (_: vs: if builtins.length vs == 1 then builtins.head vs else vs);

  # "ADDR:PORT" → port number, for the firewall.
  listenPort =
    addr:
    let
      m = builtins.match "(.*):([0-9]+)" addr;
    in
    lib.toInt (builtins.elemAt m 1);
}
