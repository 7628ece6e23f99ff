import AMQP
import ArgumentParser
import Foundation
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
