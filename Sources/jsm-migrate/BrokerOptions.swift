import AMQP
import ArgumentParser
import Foundation
import JSMPipeline
import JSMServices
import Logging

/// Where the RabbitMQ broker is and how to log in.
///
/// Credentials come from the environment (`AMQP_URL`, `AMQP_PASSWORD`) or from a file, never from
/// the command line, where every user of the machine could read them in the process list.
struct BrokerOptions: ParsableArguments {
    @Option(
        name: .customLong("amqp-url"),
        help: "Broker URL without a password, e.g. amqp://jsm@127.0.0.1:5672/%2f (default: $AMQP_URL).")
    var url: String?

    @Option(name: .customLong("amqp-url-file"), help: "File whose first line is the broker URL, password included.")
    var urlFile: String?

    @Option(name: .customLong("amqp-ca-file"), help: "PEM file of the CA that signed the broker's certificate (amqps).")
    var caFile: String?

    /// The broker settings, validated, with the connection name shown by the broker.
    func configuration(connectionName: String) throws -> AMQPConfiguration {
        let environment = ProcessInfo.processInfo.environment
        var configuration: AMQPConfiguration
        if let url {
            configuration = try AMQPConfiguration(url: url)
            if let components = URLComponents(string: url), components.password != nil {
                throw ValidationError(
                    "--amqp-url must not contain a password (it would show in the process list): "
                        + "use AMQP_URL, AMQP_PASSWORD or --amqp-url-file")
            }
            if let password = environment["AMQP_PASSWORD"] { configuration.password = password }
        } else if let urlFile {
            let text: String
            do {
                text = try String(contentsOfFile: urlFile, encoding: .utf8)
            } catch {
                throw ValidationError("cannot read --amqp-url-file '\(urlFile)': \(error.localizedDescription)")
            }
            guard let line = text.split(whereSeparator: \.isNewline).first else {
                throw ValidationError("--amqp-url-file '\(urlFile)' is empty")
            }
            configuration = try AMQPConfiguration(url: String(line).trimmingCharacters(in: .whitespaces))
        } else if let url = environment["AMQP_URL"] {
            configuration = try AMQPConfiguration(url: url)
        } else {
            throw ValidationError("no broker given: set AMQP_URL, or pass --amqp-url or --amqp-url-file")
        }
        if let caFile {
            guard configuration.tls != nil else { throw ValidationError("--amqp-ca-file needs an amqps:// URL") }
            configuration.tls?.caCertificateFile = caFile
        }
        configuration.connectionName = connectionName
        return configuration
    }

    /// Connects, runs `body`, and closes the connection whether `body` succeeded or not.
    func withConnection<T: Sendable>(
        named connectionName: String, _ body: (AMQPConnection) async throws -> T
    ) async throws -> T {
        let connection = try await AMQPConnection.connect(
            try configuration(connectionName: connectionName), logger: Logger(label: "jsm.amqp"))
        do {
            let result = try await body(connection)
            await connection.close()
            return result
        } catch {
            await connection.close()
            throw error
        }
    }
}

/// `--topology declare|check`: whether a worker or an aggregator declares the broker topology at
/// start-up or only checks that it exists.
///
/// `declare` (the default) lets any component start first on a fresh broker. `check` uses
/// passive declares only, so the process's broker user needs no `configure` permission: that is
/// how deploy/ runs workers and aggregators, with the topology imported from
/// deploy/rabbitmq/definitions.json or declared by `jsm-migrate broker declare`.
struct TopologyOptions: ParsableArguments {
    enum Mode: String, ExpressibleByArgument, CaseIterable, Sendable {
        case declare, check
    }

    @Option(
        help: ArgumentHelp(
            "declare: declare the broker topology at start-up; check: only check that it exists (passive declares, no configure permission needed)."
        ))
    var topology: Mode = .declare

    /// Declares or checks the topology on `connection`; a missing exchange or queue in `check`
    /// mode is an error that says how to create it.
    func prepare(_ connection: AMQPConnection) async throws {
        let declarations = MigrationBrokerTopology().declarations
        switch topology {
        case .declare:
            try await connection.declare(declarations)
        case .check:
            do {
                try await connection.check(declarations)
            } catch {
                guard error.replyCode == 404 else { throw error }
                throw PipelineError(
                    .invalidState,
                    "the broker topology is missing (\(error.replyText ?? "\(error)")): declare it with "
                        + "`jsm-migrate broker declare` or import deploy/rabbitmq/definitions.json, "
                        + "or run with --topology declare")
            }
        }
    }
}
