import ArgumentParser
import Logging

/// `jsm-migrate`: moves Jira Service Management customers and users from Server/Data Center to Cloud.
@main
struct JSMMigrate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "jsm-migrate",
        abstract: "Migrate Jira Service Management customers and users from Server/Data Center to Cloud.",
        subcommands: [
            DemoCommand.self, StartCommand.self, WorkerCommand.self, AggregatorCommand.self, ReportCommand.self,
            VerifyCommand.self, FailedCommand.self, StatusCommand.self, BrokerCommand.self,
            GenerateSourceCommand.self, CloudSiteCommand.self,
        ])
}

/// Options every subcommand shares.
struct GlobalOptions: ParsableArguments {
    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .notice

    /// Sends logs to standard error at the chosen level; called once at the start of `run()`.
    func bootstrapLogging() {
        let level = logLevel
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}
