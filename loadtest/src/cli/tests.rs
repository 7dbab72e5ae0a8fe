use super::*;

fn common(addr: &str, source_ips: u8) -> CommonArgs {
    let cli = Cli::parse_from([
        "loadtest",
        "idle",
        "--addr",
        addr,
        "--source-ips",
        &source_ips.to_string(),
    ]);
    match cli.command {
        Command::Idle(args) => args.common,
        other => panic!("parsed {other:?}"),
    }
}

#[test]
fn only_loopback_targets() {
    assert_eq!(
        common("127.0.0.1:4000", 1).targets().unwrap(),
        Targets::one("127.0.0.1:4000".parse().unwrap())
    );
    assert!(common("127.3.2.1:4000", 4).targets().is_ok());
    assert!(common("[::1]:4000", 1).targets().is_ok());
    let error = common("10.0.0.5:4000", 1).targets().unwrap_err().to_string();
    assert!(error.contains("not a loopback address"), "{error}");
    assert!(common("[::1]:4000", 2).targets().is_err());
    assert!(common("nonsense", 1).targets().is_err());
}

#[test]
fn several_targets_are_comma_separated_and_all_loopback() {
    let targets = common("127.0.0.1:4000, 127.0.0.1:4010,[::1]:4020", 1)
        .targets()
        .unwrap();
    assert_eq!(targets.to_string(), "127.0.0.1:4000,127.0.0.1:4010,[::1]:4020");
    assert_eq!(targets.for_member(4), "127.0.0.1:4010".parse().unwrap());
    let error = common("127.0.0.1:4000,10.0.0.5:4000", 1)
        .targets()
        .unwrap_err()
        .to_string();
    assert!(error.contains("10.0.0.5:4000 is not a loopback address"), "{error}");
    assert!(common("127.0.0.1:4000,[::1]:4000", 2).targets().is_err());
    assert!(common("127.0.0.1:4000,", 1).targets().is_err());
}

#[test]
fn seconds_are_checked() {
    assert_eq!(seconds("1.5"), Ok(1.5));
    assert!(seconds("-1").is_err());
    assert!(seconds("inf").is_err());
    assert!(seconds("x").is_err());
}

#[test]
fn mmo_flags_and_defaults() {
    let cli = Cli::parse_from([
        "loadtest",
        "mmo",
        "--density",
        "clustered",
        "--admin-addr",
        "127.0.0.1:4001",
    ]);
    let Command::Mmo(args) = &cli.command else {
        panic!("parsed {cli:?}");
    };
    assert_eq!((args.bots, args.world.as_str(), args.input_hz), (1000, "w", 10));
    assert_eq!(args.density, Density::Clustered);
    assert_eq!(args.step, 1.0);
    assert_eq!(cli.command.admin_addr(), Some("127.0.0.1:4001".parse().unwrap()));
    assert!(Cli::try_parse_from(["loadtest", "mmo", "--admin-addr", "10.0.0.1:4001"]).is_err());
    assert!(Cli::try_parse_from(["loadtest", "mmo", "--spawn-server", "--admin-addr", "127.0.0.1:1"]).is_err());
    let settings = serde_json::to_value(args).unwrap();
    assert_eq!(settings["density"], "clustered");
}

#[test]
fn plugin_flags_and_defaults() {
    let cli = Cli::parse_from(["loadtest", "plugin", "--rooms", "10", "--find-max"]);
    let Command::Plugin(args) = &cli.command else {
        panic!("parsed {cli:?}");
    };
    assert_eq!((args.kind.as_str(), args.chat.rooms.members), ("echo", 100));
    assert!(args.chat.find_max.find_max);
    let settings = serde_json::to_value(args).unwrap();
    assert_eq!((&settings["kind"], &settings["rooms"]), (&"echo".into(), &10.into()));
}

#[test]
fn the_cli_is_consistent() {
    use clap::CommandFactory;
    Cli::command().debug_assert();
}
