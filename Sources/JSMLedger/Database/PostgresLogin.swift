import Logging
import NIOCore
import PostgresNIO

/// Asks a PostgreSQL server whether it accepts a login, over one connection outside any pool.
///
/// A `PostgresClient` retries a refused login the way it retries an unreachable server, so an
/// operator with a wrong password would only see a timeout. The ledger and the source ask first.
public enum PostgresLogin {
    /// The server refused the role, the password or the database (SQLSTATE class 28, or 3D000).
    public struct Refusal: Error, Sendable, Hashable, CustomStringConvertible {
        /// `host:port`.
        public let endpoint: String
        /// The role that logged in.
        public let username: String
        /// The database asked for.
        public let database: String
        /// The server's SQLSTATE, e.g. 28P01 (wrong password) or 3D000 (no such database).
        public let sqlState: String
        /// The server's message (it names the role or database, never the password).
        public let message: String

        /// One line for the operator, naming the variables to check.
        public var description: String {
            "PostgreSQL at \(endpoint) refused role '\(username)' on database '\(database)': \(message) "
                + "(SQLSTATE \(sqlState)); check POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_DB"
        }
    }

    /// The server's refusal of this login; nil when it accepts it or cannot be asked (down,
    /// unreachable, TLS failing): those are the pool's to wait out and to report.
    public static func refusal(
        host: String, port: Int, username: String, password: String?, database: String?,
        tls: PostgresConnection.Configuration.TLS, connectTimeout: Duration, logger: Logger
    ) async -> Refusal? {
        var configuration = PostgresConnection.Configuration(
            host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.connectTimeout = TimeAmount(connectTimeout)
        do {
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: logger)
            try? await connection.close()
            return nil
        } catch let error as PSQLError where error.code == .server {
            let state = error.serverInfo?[.sqlState] ?? ""
            guard state.hasPrefix("28") || state == "3D000" else { return nil }
            return Refusal(
                endpoint: "\(host):\(port)", username: username, database: database ?? username, sqlState: state,
                message: error.serverInfo?[.message] ?? "login refused")
        } catch {
            return nil
        }
    }
}
