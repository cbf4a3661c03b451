//! Command line: `serve` (default), `mock`, `print-schema`.

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
    /// Serve the gateway. Without a config (file or LEDGER_GATEWAY__SOURCES__*),
    /// runs the demo: mock upstreams in-process, gateway pointed at them.
    Serve(ServeArgs),
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
    /// Where the demo's mock upstreams listen (default: an ephemeral loopback port).
    #[arg(long)]
    pub mock_listen: Option<SocketAddr>,
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
