//! The `switchyard` command: parse the CLI, load the configuration, run.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use switchyard::config::{Config, Env, LogFormat};

/// mimalloc rather than the system allocator: requests allocate and free
/// many small objects across threads, where glibc's malloc spent a tenth of
/// the gateway's instructions (see BENCHMARKS.md). Built without
/// transparent huge pages, which made idle memory 2 MiB-grained (28 MB idle
/// instead of 15). With its `override` feature it is C code's `malloc` as
/// well (SQLite's).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
        /// Log lines as `text` or `json` (one object a line); overrides
        /// `[server] log_format` and SWITCHYARD_LOG_FORMAT.
        #[arg(long, value_name = "text|json")]
        log_format: Option<LogFormat>,
        /// A Unix socket path for zero-downtime restarts: a process started
        /// with the path another one serves takes its listening sockets
        /// over, and that one drains and exits.
        #[arg(long, value_name = "PATH", env = "SWITCHYARD_HANDOVER")]
        handover: Option<PathBuf>,
    },
    /// Validate a configuration file and print the resolved providers and routes.
    CheckConfig {
        /// The configuration file to check.
        file: PathBuf,
    },
    /// Manage Switchyard keys in the configured storage.
    Keys {
        /// The configuration file naming the storage (embedded defaults
        /// without one).
        #[arg(long, short, global = true)]
        config: Option<PathBuf>,
        #[command(subcommand)]
        command: Box<KeysCommand>,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create a key; its secret is printed once and never stored.
    Create {
        #[command(flatten)]
        settings: KeyFlags,
    },
    /// List keys (without secrets).
    List {
        /// Include revoked keys.
        #[arg(long)]
        include_revoked: bool,
    },
    /// Change a key's settings; `--clear FIELD` removes one.
    Update {
        /// The key's id (key_...).
        id: String,
        #[command(flatten)]
        settings: KeyFlags,
        /// Fields to clear (rpm, tpm, budget_usd, models, ...).
        #[arg(long, value_name = "FIELD")]
        clear: Vec<String>,
    },
    /// Revoke a key at once.
    Revoke {
        /// The key's id (key_...).
        id: String,
    },
}

/// The same settings, and the same names, as the admin API's body.
#[derive(clap::Args)]
struct KeyFlags {
    #[arg(long)]
    name: Option<String>,
    /// Comma-separated model and route globs (`openai/*,smart`).
    #[arg(long, value_delimiter = ',')]
    models: Option<Vec<String>>,
    /// Comma-separated tool globs (`github,jira__search_*`).
    #[arg(long, value_delimiter = ',')]
    tools: Option<Vec<String>>,
    #[arg(long)]
    rpm: Option<u32>,
    #[arg(long)]
    tpm: Option<u64>,
    /// Requests in flight at once.
    #[arg(long)]
    max_concurrent: Option<u32>,
    #[arg(long)]
    budget_usd: Option<f64>,
    /// day, month or total.
    #[arg(long)]
    budget_period: Option<String>,
    /// A default tag, `key=value`; repeatable.
    #[arg(long, value_name = "KEY=VALUE")]
    metadata: Vec<String>,
    /// Log mode ceiling: full, metadata or none.
    #[arg(long)]
    log: Option<String>,
    /// Comma-separated jurisdictions (`eu,us`).
    #[arg(long, value_delimiter = ',')]
    jurisdictions: Option<Vec<String>>,
    #[arg(long)]
    cache_namespace: Option<String>,
    #[arg(long)]
    cache_ttl_s: Option<u64>,
}

impl KeyFlags {
    /// The flags as the admin API's JSON body, so both share validation.
    fn to_json(&self, clear: &[String]) -> Result<serde_json::Value, String> {
        let mut o = serde_json::Map::new();
        let mut put = |k: &str, v: serde_json::Value| {
            o.insert(k.to_owned(), v);
        };
        if let Some(v) = &self.name {
            put("name", v.clone().into());
        }
        if let Some(v) = &self.models {
            put("models", v.clone().into());
        }
        if let Some(v) = &self.tools {
            put("tools", v.clone().into());
        }
        if let Some(v) = self.rpm {
            put("rpm", v.into());
        }
        if let Some(v) = self.tpm {
            put("tpm", v.into());
        }
        if let Some(v) = self.max_concurrent {
            put("max_concurrent", v.into());
        }
        if let Some(v) = self.budget_usd {
            put("budget_usd", v.into());
        }
        if let Some(v) = &self.budget_period {
            put("budget_period", v.clone().into());
        }
        if !self.metadata.is_empty() {
            let mut m = serde_json::Map::new();
            for pair in &self.metadata {
                let Some((k, v)) = pair.split_once('=') else {
                    return Err(format!("--metadata: expected KEY=VALUE, got `{pair}`"));
                };
                m.insert(k.to_owned(), v.into());
            }
            put("metadata", m.into());
        }
        if let Some(v) = &self.log {
            put("log", v.clone().into());
        }
        if let Some(v) = &self.jurisdictions {
            put("jurisdictions", v.clone().into());
        }
        if let Some(v) = &self.cache_namespace {
            put("cache_namespace", v.clone().into());
        }
        if let Some(v) = self.cache_ttl_s {
            put("cache_ttl_s", v.into());
        }
        for field in clear {
            if field == "name" {
                return Err("--clear name: a key always has a name".into());
            }
            o.insert(field.clone(), serde_json::Value::Null);
        }
        Ok(serde_json::Value::Object(o))
    }
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
        Command::Keys { config, command } => {
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
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    eprintln!("error: cannot start the runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            rt.block_on(keys(config, *command))
        }
        Command::Serve {
            config,
            log_format,
            handover,
        } => {
            let loaded = match &config {
                Some(path) => Config::load(path, &env),
                None => Config::embedded(&env),
            };
            let config = match loaded {
                Ok(c) => c,
                Err(e) => {
                    // Before a configuration, the flag or the variable say
                    // how to write (a bad variable is itself this error).
                    let format = log_format
                        .or_else(|| env.get("SWITCHYARD_LOG_FORMAT")?.parse().ok())
                        .unwrap_or_default();
                    fatal(format, &e.to_string());
                    return ExitCode::from(2);
                }
            };
            let format = log_format.unwrap_or(config.server.log_format);
            init_tracing(format);
            let rt = match tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    fatal(format, &format!("cannot start the runtime: {e}"));
                    return ExitCode::FAILURE;
                }
            };
            match rt.block_on(serve(config, env, format, handover)) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    fatal(format, &format!("{e:#}"));
                    ExitCode::FAILURE
                }
            }
        }
    }
}

async fn keys(config: Config, command: KeysCommand) -> ExitCode {
    use switchyard::keys::manage::{self, KeySpec, ManageError};
    let storage = match switchyard::storage::Storage::connect(&config.storage.url).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = storage.migrate().await {
        eprintln!("error: {e:#}");
        return ExitCode::FAILURE;
    }
    let spec = |flags: &KeyFlags, clear: &[String]| -> Result<KeySpec, String> {
        let body = flags.to_json(clear)?;
        KeySpec::parse(body.to_string().as_bytes())
            .map_err(|e| format!("--{}: {}", e.field.replace('_', "-"), e.message))
    };
    let show =
        |v: serde_json::Value| println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    let fail = |e: ManageError| {
        match e {
            ManageError::Field(f) => {
                eprintln!("error: --{}: {}", f.field.replace('_', "-"), f.message)
            }
            other => eprintln!("error: {other}"),
        }
        ExitCode::from(2)
    };
    let result = match command {
        KeysCommand::Create { settings } => match spec(&settings, &[]) {
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            Ok(spec) => match manage::create(&storage, spec).await {
                Ok((k, secret)) => {
                    let mut v = serde_json::to_value(&k).unwrap_or_default();
                    if let Some(o) = v.as_object_mut() {
                        o.insert("key".into(), secret.into());
                    }
                    show(v);
                    eprintln!("Store the key now: it is not shown again.");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            },
        },
        KeysCommand::List { include_revoked } => {
            match switchyard::keys::store::list(&storage, include_revoked).await {
                Ok(keys) => {
                    show(serde_json::to_value(&keys).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e.into()),
            }
        }
        KeysCommand::Update {
            id,
            settings,
            clear,
        } => match spec(&settings, &clear) {
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
            Ok(spec) => match manage::update(&storage, &id, spec).await {
                Ok(k) => {
                    show(serde_json::to_value(&k).unwrap_or_default());
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            },
        },
        KeysCommand::Revoke { id } => match manage::revoke(&storage, &id).await {
            Ok(k) => {
                show(serde_json::to_value(&k).unwrap_or_default());
                ExitCode::SUCCESS
            }
            Err(e) => fail(e),
        },
    };
    storage.close().await;
    result
}

async fn serve(
    config: Config,
    env: Env,
    format: LogFormat,
    handover: Option<PathBuf>,
) -> anyhow::Result<()> {
    use switchyard::server::handover;
    let summary = config.summary(&env);
    // A process already serving on the handover path gives us its sockets.
    let taken = match &handover {
        Some(path) => {
            let path = path.clone();
            tokio::task::spawn_blocking(move || handover::take(&path)).await??
        }
        None => None,
    };
    let (sockets, line) = match taken {
        Some(t) => {
            let (data, admin, line) = t.into_parts();
            (Some((data, admin)), Some(line))
        }
        None => (None, None),
    };
    let running = switchyard::server::start_on(config, &env, sockets).await?;
    if let Some(path) = handover {
        handover::offer(
            path,
            running.sockets.clone(),
            format!("{} {}", running.addr, running.admin_addr),
            running.shutdown_token(),
            running.handed_over.clone(),
        )?;
    }
    // Serving: the process we took over from may drain now.
    if let Some(line) = line {
        tokio::task::spawn_blocking(move || line.ready()).await??;
    }
    let token_env = &running.gateway.config.auth.admin_token_env;
    match format {
        LogFormat::Text => {
            eprint!("{summary}");
            eprintln!(
                "serving on http://{}  admin on http://{}",
                running.addr, running.admin_addr
            );
            match &running.gateway.admin_token.file {
                Some(path) => eprintln!("admin token: in {} (mode 0600)", path.display()),
                None => eprintln!("admin token: from ${token_env}"),
            }
        }
        // The banner as events: the summary (which names key variables,
        // never their values) as one field.
        LogFormat::Json => {
            let token = match &running.gateway.admin_token.file {
                Some(path) => format!("in {} (mode 0600)", path.display()),
                None => format!("from ${token_env}"),
            };
            tracing::info!(
                config = summary.trim_end(),
                listen = %format_args!("http://{}", running.addr),
                admin = %format_args!("http://{}", running.admin_addr),
                admin_token = token,
                "serving"
            );
        }
    }
    // SIGHUP reads the configuration file again; the reloader logs what
    // changed, or why nothing did.
    let reloader = running.reloader.clone();
    tokio::spawn(async move {
        use tokio::signal::unix::{SignalKind, signal};
        let Ok(mut hup) = signal(SignalKind::hangup()) else {
            return;
        };
        while hup.recv().await.is_some() {
            if let Err(e) = reloader.reload().await {
                tracing::error!(error = %e, "Configuration reload (SIGHUP) refused; nothing changed");
            }
        }
    });
    let token = running.shutdown_token();
    tokio::select! {
        _ = shutdown_signal() => {}
        _ = token.cancelled() => {}
    }
    match format {
        LogFormat::Text => eprintln!("shutting down"),
        LogFormat::Json => tracing::info!("shutting down"),
    }
    running.shutdown().await;
    Ok(())
}

/// An error that ends the process, in the log format asked for.
fn fatal(format: LogFormat, message: &str) {
    match format {
        LogFormat::Text => eprintln!("error: {message}"),
        LogFormat::Json => {
            // Before the configuration was read, nothing logs yet.
            if !tracing::dispatcher::has_been_set() {
                init_tracing(LogFormat::Json);
            }
            tracing::error!("{message}");
        }
    }
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

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,sqlx=warn,hyper=warn,reqwest=warn")
    });
    // rmcp logs whole MCP messages (tool arguments and results, which may
    // hold anything, an upstream's credential included) at debug and some
    // at info: whatever RUST_LOG asks, it gets warnings only.
    let filter = filter.add_directive("rmcp=warn".parse().expect("a valid directive"));
    let fmt = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => fmt.init(),
        // One object a line, the event's fields at its top level (a
        // request's id and trace id among them where the line is about
        // one request).
        LogFormat::Json => fmt
            .with_ansi(false)
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}
