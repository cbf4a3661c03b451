//! Command line: `serve` (default), `check-config`, `mock`, `print-schema`.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "ledger-gateway", version, about = "One GraphQL endpoint over every inventory and accounting ledger")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the configured sources (--config FILE and LEDGER_GATEWAY__*
    /// variables), or the demo: mock upstreams in-process, the gateway
    /// pointed at them. The demo runs with --demo, or when nothing is
    /// configured at all: no flag, no file, no LEDGER_GATEWAY__* variable.
    Serve(ServeArgs),
    /// Load and validate the configuration (file plus environment) without
    /// serving, and print the effective settings, secrets redacted.
    /// Exits 1 when it is invalid.
    CheckConfig(CheckConfigArgs),
    /// Run the mock upstreams alone.
    Mock(MockArgs),
    /// Print the federation SDL the server serves.
    PrintSchema,
}

#[derive(Debug, Default, clap::Args)]
pub struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "LEDGER_GATEWAY_CONFIG")]
    pub config: Option<PathBuf>,
    /// Address to listen on (overrides server.listen).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Serve the mock upstreams: every setting but the sources still comes
    /// from --config and the environment, which must configure no sources.
    #[arg(long)]
    pub demo: bool,
    /// Where the demo's mock upstreams listen (default: an ephemeral loopback port).
    #[arg(long, requires = "demo")]
    pub mock_listen: Option<SocketAddr>,
}

impl ServeArgs {
    /// Whether to serve the demo: asked for, or nothing configured at all.
    /// Anything configured (a flag, a file, `in_environment`) without
    /// `--demo` must name real sources, so a mistyped section never serves
    /// made-up ledgers.
    pub fn runs_demo(&self, in_environment: bool) -> bool {
        let bare = self.config.is_none() && self.listen.is_none() && self.mock_listen.is_none();
        self.demo || (bare && !in_environment)
    }
}

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// TOML configuration file; without one, the environment alone.
    #[arg(env = "LEDGER_GATEWAY_CONFIG")]
    pub file: Option<PathBuf>,
}

#[derive(Debug, clap::Args)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8081")]
    pub listen: SocketAddr,
    /// Ledger entries per source and tenant.
    #[arg(long, default_value_t = 3000)]
    pub entries: usize,
    /// Seed for the generated data.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn serve(args: &[&str]) -> ServeArgs {
        match Cli::try_parse_from(args).map(|cli| cli.command) {
            Ok(Some(Command::Serve(args))) => args,
            other => panic!("{args:?}: {other:?}"),
        }
    }

    #[test]
    fn the_demo_runs_when_asked_for_or_when_nothing_is_configured() {
        assert!(ServeArgs::default().runs_demo(false), "no command, no flag, no variable");
        assert!(serve(&["ledger-gateway", "serve"]).runs_demo(false));
        assert!(serve(&["ledger-gateway", "serve", "--demo", "--config", "f.toml"]).runs_demo(true));
        assert!(!serve(&["ledger-gateway", "serve"]).runs_demo(true), "a LEDGER_GATEWAY__ variable configures");
        assert!(!serve(&["ledger-gateway", "serve", "--config", "f.toml"]).runs_demo(false));
        assert!(!serve(&["ledger-gateway", "serve", "--listen", "127.0.0.1:0"]).runs_demo(false));
        assert!(Cli::try_parse_from(["ledger-gateway", "serve", "--mock-listen", "127.0.0.1:0"]).is_err());
    }
}
