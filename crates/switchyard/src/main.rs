//! The `switchyard` command: parse the CLI, load the configuration, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::config::{Config, Env};

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A self-hosted AI inference gateway"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the gateway (embedded defaults when no config file is given).
    Serve {
        /// The configuration file (switchyard.toml).
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Validate a configuration file and print the resolved providers and routes.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let env = Env::from_process();
    match cli.command {
        Command::CheckConfig { file } => match Config::load(&file, &env) {
            Ok(c) => {
                print!("{}", c.summary(&env));
                println!("ok");
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        },
        Command::Serve { config } => {
            let loaded = match &config {
                Some(path) => Config::load(path, &env),
                None => Config::embedded(&env),
            };
            let config = match loaded {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            };
            init_tracing();
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(config, env)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn serve(config: Config, env: Env) -> anyhow::Result<()> {
    let summary = config.summary(&env);
    let running = switchyard::server::start(config, &env).await?;
    eprint!("{summary}");
    eprintln!(
        "serving on http://{}  admin on http://{}",
        running.addr, running.admin_addr
    );
    match &running.gateway.admin_token.file {
        Some(path) => eprintln!("admin token: in {} (mode 0600)", path.display()),
        None => eprintln!(
            "admin token: from ${}",
            running.gateway.config.auth.admin_token_env
        ),
    }
    let token = running.shutdown_token();
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = token.cancelled() => {}
    }
    eprintln!("shutting down");
    running.shutdown().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn")
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}
