// Package config reads gateway.toml, the gateway's one configuration file
// (the contract is shared/design/CONFIG.md), into a fully defaulted and
// validated *Config.
//
// What it does:
//
//   - Load / Parse / ParseWith decode the file strictly: unknown keys, wrong
//     types, bad durations and sizes, bad enum values, reserved or duplicate
//     names, unset ${ENV} variables, unreadable *_file files, two blocks on one
//     serial port, invalid routes and addresses are all errors.
//   - Every error in the file is reported in one run, as *Errors, each with
//     its key path and line: `gateway.toml:12: coap[1].max_payload: invalid
//     size "12XB": ...`. Array indexes in key paths are 0-based, as in
//     Go: coap[1] is the second [[coap]] block.
//   - ${NAME} in any string value is replaced from the environment function
//     given by the caller ("$${" is a literal "${"). X_file, where X is a
//     string key of the same table (password_file, password_hash_file, the
//     key_file of [[coap.psk]], psk_key_file), reads X from that file with
//     trailing newlines ("\n", "\r\n") removed. Keys that are themselves
//     named *_file (ca_file, cert_file, key_file of [uplink], tls_cert_file,
//     tls_key_file) are paths that other packages open: they are checked for
//     readability and made absolute. Relative paths are resolved against the
//     directory of the configuration file (for Parse: the directory of its
//     name argument, so the working directory for a bare name).
//   - Features this version does not run yet are errors ("... is not
//     supported yet in this version"), in one function, unsupported, which a
//     later version edits; ParseOptions.AllowUnsupported skips it.
//   - Config.Redacted prints the effective configuration as TOML with every
//     set Secret shown as "<redacted>"; Parse reads that text back.
//
// What it must never do: no I/O beyond reading the configuration file, the
// *_file files and checking the TLS files it names (no network, no DNS, no
// opening of serial ports, no writing); no package-level mutable state (the
// environment and the host name come from the caller or ParseOptions); no
// secret value in any message, String or encoding (Secret redacts itself).
package config
