//! The `yunlian` command: `serve` (the default) and the operator's commands around it.

use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use yunlian_api::admin;
use yunlian_api::config::Config;

#[derive(Parser)]
#[command(
    name = "yunlian",
    version,
    about = "云联 · the Yunlian party-building server"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default): migrations first, then the jobs and the HTTP listener.
    Serve,
    /// Apply the database migrations and exit.
    Migrate,
    /// Create a township administrator at the root org; the password is read from standard
    /// input (one line), never from an argument.
    CreateAdmin {
        /// The administrator's mobile number (11 digits).
        #[arg(long)]
        phone: String,
        /// Their name.
        #[arg(long, default_value = "管理员")]
        name: String,
    },
    /// Check the configuration and print it (secrets redacted); exit 2 if it is invalid.
    CheckConfig,
    /// Write a consistent copy of the database to FILE while the server serves.
    Backup { file: PathBuf },
    /// Put the backup FILE back (the server must be stopped); phones then rebuild.
    Restore { file: PathBuf },
    /// Start a new sync epoch (after a point-in-time recovery made with PostgreSQL's own
    /// tools): every phone rebuilds its data at its next pull.
    NewEpoch,
}

#[actix_web::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("configuration: {e}");
            return ExitCode::from(2);
        }
    };
    yunlian_api::telemetry::init(config.log_json);
    let done = match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => admin::serve(config).await,
        Command::Migrate => admin::migrate(&config).await,
        Command::CreateAdmin { phone, name } => {
            let mut password = String::new();
            if let Err(e) = std::io::stdin().read_line(&mut password) {
                eprintln!("could not read the password from standard input: {e}");
                return ExitCode::from(2);
            }
            admin::create_admin(
                &config,
                &phone,
                &name,
                password.trim_end_matches(['\r', '\n']),
            )
            .await
        }
        Command::CheckConfig => {
            println!("{config:#?}");
            admin::check_config(&config)
        }
        Command::Backup { file } => admin::backup(&config, &file).await,
        Command::Restore { file } => admin::restore(&config, &file).await,
        Command::NewEpoch => admin::new_epoch(&config).await,
    };
    match done {
        Ok(msg) => {
            if !msg.is_empty() {
                println!("{msg}");
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("yunlian: {e}");
            ExitCode::from(e.exit_code())
        }
    }
}
