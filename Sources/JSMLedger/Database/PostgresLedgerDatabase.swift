import Logging
import NIOCore
import PostgresNIO
import Synchronization

/// How the ledger reaches PostgreSQL (the ledger for workers on several hosts).
///
/// Its `description` never includes the password, so a configuration can be logged as it is.
public struct PostgresLedgerConfiguration: Sendable, CustomStringConvertible {
    /// Server host name or address.
    public var host: String
    /// Server port.
    public var port: Int
    /// Role to log in as.
    public var username: String
    /// The role's password; never logged.
    public var password: String?
    /// Database name.
    public var database: String?
    /// The schema the ledger's tables live in (created by ``Ledger/migrateSchema()``); one schema
    /// per ledger lets tests and several installations share one database.
    public var schema: String
    /// Connection pool bound: at most this many connections per process.
    public var maximumConnections: Int
    /// How long one operation waits for a pooled connection before it fails as unavailable
    /// (retriable). The pool itself would keep a request waiting for a minute while the server is down.
    public var leaseTimeout: Duration
    /// How long one connection attempt may take.
    public var connectTimeout: Duration
    /// TLS towards the server; off by default for the loopback service, `.require` in production.
    public var tls: TLS

    /// How the ledger's connections use TLS.
    public enum TLS: Sendable {
        /// Plain TCP (the loopback service).
        case disable
        /// TLS when the server offers it, plain TCP otherwise.
        case prefer(TLSConfiguration)
        /// TLS, or no connection.
        case require(TLSConfiguration)
    }

    /// Creates a configuration; every tuning value has a default that suits a worker.
    public init(
        host: String = "127.0.0.1", port: Int = 5432, username: String, password: String?, database: String?,
        schema: String = "jsm_ledger", maximumConnections: Int = 8, leaseTimeout: Duration = .seconds(10),
        connectTimeout: Duration = .seconds(5), tls: TLS = .disable
    ) {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.database = database
        self.schema = schema
        self.maximumConnections = maximumConnections
        self.leaseTimeout = leaseTimeout
        self.connectTimeout = connectTimeout
        self.tls = tls
    }

    /// Reads `POSTGRES_HOST`, `POSTGRES_PORT`, `POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`
    /// (defaults 127.0.0.1, 55432, jsm, no password, jsm), as the project's services export them.
    public init(environment: [String: String], schema: String = "jsm_ledger") {
        self.init(
            host: environment["POSTGRES_HOST"] ?? "127.0.0.1",
            port: environment["POSTGRES_PORT"].flatMap { Int($0) } ?? 55432,
            username: environment["POSTGRES_USER"] ?? "jsm",
            password: environment["POSTGRES_PASSWORD"],
            database: environment["POSTGRES_DB"] ?? "jsm",
            schema: schema)
    }

    /// `postgres://user@host:port/database (schema s)`, without the password.
    public var description: String {
        "postgres://\(username)@\(host):\(port)/\(database ?? "") (schema \(schema))"
    }

    var clientTLS: PostgresClient.Configuration.TLS {
        switch tls {
        case .disable: return .disable
        case .prefer(let configuration): return .prefer(configuration)
        case .require(let configuration): return .require(configuration)
        }
    }

    func connectionTLS() throws -> PostgresConnection.Configuration.TLS {
        switch tls {
        case .disable: return .disable
        case .prefer(let configuration): return .prefer(try NIOSSLContext(configuration: configuration))
        case .require(let configuration): return .require(try NIOSSLContext(configuration: configuration))
        }
    }

    /// Whether `schema` is a plain lower-case identifier, so it can be quoted into DDL safely.
    var hasValidSchemaName: Bool {
        guard let first = schema.unicodeScalars.first, schema.unicodeScalars.count <= 63 else { return false }
        let allowed = { (scalar: Unicode.Scalar) in
            (scalar >= "a" && scalar <= "z") || (scalar >= "0" && scalar <= "9") || scalar == "_"
        }
        return !(first >= "0" && first <= "9") && schema.unicodeScalars.allSatisfy(allowed)
    }
}

/// The ledger on a pooled PostgresClient. Statements run in READ COMMITTED transactions; the
/// operations that must happen once use conditional updates that lock the row they test.
final class PostgresLedgerDatabase: LedgerDatabase {
    let dialect = SQLDialect.postgres
    let configuration: PostgresLedgerConfiguration
    private let client: PostgresClient
    private let logger: Logger

    init(configuration: PostgresLedgerConfiguration, logger: Logger) throws(LedgerError) {
        guard configuration.hasValidSchemaName else {
            throw LedgerError(
                .invalidRequest, operation: "open",
                "schema name '\(configuration.schema)' must be lower-case letters, digits and _ (at most 63)")
        }
        var clientConfiguration = PostgresClient.Configuration(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: configuration.clientTLS)
        clientConfiguration.options.maximumConnections = max(1, configuration.maximumConnections)
        clientConfiguration.options.connectTimeout = configuration.connectTimeout
        // Every session resolves the ledger's tables in its own schema.
        clientConfiguration.options.additionalStartupParameters = [("search_path", configuration.schema)]
        self.configuration = configuration
        self.logger = logger
        self.client = PostgresClient(configuration: clientConfiguration, backgroundLogger: logger)
    }

    /// Runs the connection pool until the task is cancelled; queries wait until it runs.
    func run() async {
        await client.run()
    }

    func transaction<T: Sendable>(
        _ operation: String, readOnly: Bool, _ body: @escaping @Sendable (any LedgerSession) async throws -> T
    ) async throws(LedgerError) -> T {
        let client = self.client
        let logger = self.logger
        let endpoint = self.endpoint
        let leaseExpired = LedgerError(
            .unavailable, operation: operation,
            "no PostgreSQL connection to \(endpoint) within \(configuration.leaseTimeout)")
        do {
            return try await LeasedOperation.run(
                lease: configuration.leaseTimeout,
                leaseExpired: leaseExpired,
                closedWhileWaiting: LedgerError(
                    .unavailable, operation: operation,
                    "the connection to PostgreSQL at \(endpoint) closed while the transaction waited for an answer")
            ) { leased in
                try await client.withConnection { connection in
                    leased.mark(connection)
                    return try await Self.runTransaction(on: connection, readOnly: readOnly, logger: logger, body)
                }
            }
        } catch {
            let classified = classify(error, operation: operation)
            // The pool retries a refused login as it would an unreachable server: say which it is.
            // Still retriable here: a password rotated while the process runs is fixed without it.
            if classified == leaseExpired || classified.message == Self.poolBreakerMessage(endpoint),
                let refusal = await loginRefusal()
            {
                throw LedgerError(.unavailable, operation: operation, "\(classified.message); \(refusal)")
            }
            throw classified
        }
    }

    /// Refuses to start with a role, password or database the server does not accept: the pool
    /// would only report it as an unreachable server, after its lease timeout, and a worker would
    /// retry it for ever. Anything else (the server down, TLS) is left to the pool to wait out.
    func checkLogin() async throws(LedgerError) {
        if let refusal = await loginRefusal() {
            throw LedgerError(.loginRefused, operation: "open", "\(refusal)")
        }
    }

    /// Why the server refuses this configuration's login; nil when it accepts it or cannot be asked.
    private func loginRefusal() async -> PostgresLogin.Refusal? {
        guard let tls = try? configuration.connectionTLS() else { return nil }
        return await PostgresLogin.refusal(
            host: configuration.host, port: configuration.port, username: configuration.username,
            password: configuration.password, database: configuration.database, tls: tls,
            connectTimeout: configuration.connectTimeout, logger: logger)
    }

    private static func poolBreakerMessage(_ endpoint: String) -> String {
        "cannot open a connection to \(endpoint)"
    }

    private static func runTransaction<T: Sendable>(
        on connection: PostgresConnection, readOnly: Bool, logger: Logger,
        _ body: @escaping @Sendable (any LedgerSession) async throws -> T
    ) async throws -> T {
        try await connection.query(
            readOnly ? "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY" : "BEGIN", logger: logger)
        do {
            let result = try await body(PostgresSession(connection: connection, logger: logger))
            try await connection.query("COMMIT", logger: logger)
            return result
        } catch {
            // A connection the server ended (FATAL, e.g. pg_terminate_backend or a restart) has
            // already rolled back; a ROLLBACK sent on it can wait forever in postgres-nio while the
            // close is being processed, so it is only sent on a connection that is still usable.
            if !Self.connectionEnded(by: error, connection) {
                _ = try? await connection.query("ROLLBACK", logger: logger)
            }
            throw error
        }
    }

    /// Whether `error` ended the connection: the server said FATAL or PANIC, or the client lost it.
    static func connectionEnded(by error: any Error, _ connection: PostgresConnection) -> Bool {
        if connection.isClosed { return true }
        guard let error = error as? PSQLError else { return false }
        switch error.code {
        case .server:
            let severity = error.serverInfo?[.severity] ?? ""
            let state = error.serverInfo?[.sqlState] ?? ""
            return severity == "FATAL" || severity == "PANIC" || state.hasPrefix("08") || state.hasPrefix("57P")
        case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection:
            return true
        default:
            return false
        }
    }

    private var endpoint: String { "\(configuration.host):\(configuration.port)" }

    func classify(_ error: any Error, operation: String) -> LedgerError {
        if let error = error as? LedgerError { return error }
        if error is CancellationError {
            return LedgerError(.unavailable, operation: operation, "cancelled before the transaction finished")
        }
        if let error = error as? PSQLError {
            switch error.code {
            case .server:
                let state = error.serverInfo?[.sqlState] ?? ""
                let message = error.serverInfo?[.message] ?? "server error"
                let text = "PostgreSQL \(state): \(message)"
                if state == "40001" || state == "40P01" {
                    return LedgerError(.transactionConflict, operation: operation, text)
                }
                if state.hasPrefix("08") || state.hasPrefix("57P") || state.hasPrefix("53") {
                    return LedgerError(.unavailable, operation: operation, text)
                }
                if state.hasPrefix("23") { return LedgerError(.constraintViolation, operation: operation, text) }
                return LedgerError(.database, operation: operation, text)
            case .connectionError, .serverClosedConnection, .uncleanShutdown, .clientClosedConnection,
                .queryCancelled:
                let cause = error.underlying.map { ": \($0)" } ?? ""
                return LedgerError(
                    .unavailable, operation: operation, "lost or could not open a connection to \(endpoint)\(cause)")
            case .poolClosed:
                return LedgerError(.database, operation: operation, "the ledger's connection pool is closed")
            default:
                return LedgerError(.database, operation: operation, "PostgreSQL client error \(error.code)")
            }
        }
        // The pool's circuit breaker (ConnectionPoolError) is not re-exported by PostgresNIO.
        if "\(type(of: error))".contains("ConnectionPoolError") {
            return LedgerError(.unavailable, operation: operation, Self.poolBreakerMessage(endpoint))
        }
        return LedgerError(.database, operation: operation, "\(type(of: error))")
    }
}

/// Set once a connection is leased, with the connection, so that its end can be noticed.
final class LeaseFlag: Sendable {
    private let leased = Mutex<PostgresConnection?>(nil)
    func mark(_ connection: PostgresConnection) { leased.withLock { $0 = connection } }
    var isMarked: Bool { leased.withLock { $0 != nil } }
    /// Whether the leased connection is closed (the server ended it, or the socket was lost).
    var connectionClosed: Bool { leased.withLock { $0?.isClosed ?? false } }
}

/// Runs a ledger operation with a deadline for getting a connection, and a watch on that
/// connection afterwards.
///
/// The operation runs in a task of its own, and the caller is answered by whichever comes first:
/// its result, the lease deadline, or the watch. The watch answers `closedWhileWaiting` when the
/// leased connection has been closed for two checks in a row while the operation still waits: a
/// query on a connection the server ended can stay unanswered for ever (seen after a PostgreSQL
/// restart). A long operation on a live connection (a cut of millions of identities) is never
/// cut short. A structured task group could not do this: it waits for every child, and that query
/// does not notice cancellation either. The abandoned operation is cancelled and ends on its own;
/// its transaction never committed, or committed and the caller's retry finds it done.
enum LeasedOperation {
    /// How often the watch looks at the leased connection.
    static let watchInterval: Duration = .seconds(2)

    static func run<T: Sendable>(
        lease: Duration, leaseExpired: LedgerError, closedWhileWaiting: LedgerError,
        _ operation: @escaping @Sendable (LeaseFlag) async throws -> T
    ) async throws -> T {
        let leased = LeaseFlag()
        let answer = Answer<T>()
        return try await withTaskCancellationHandler {
            try await withCheckedThrowingContinuation { (continuation: CheckedContinuation<T, any Error>) in
                answer.attach(continuation)
                let work = Task {
                    do {
                        answer.resume(with: .success(try await operation(leased)))
                    } catch {
                        answer.resume(with: .failure(error))
                    }
                }
                let watch = Task {
                    try await Task.sleep(for: lease)
                    if !leased.isMarked, answer.resume(with: .failure(leaseExpired)) { work.cancel() }
                    // Bounded: two days of checks at most; cancelled as soon as the answer is given.
                    var closedChecks = 0
                    for _ in 0..<86_400 {
                        try await Task.sleep(for: watchInterval)
                        closedChecks = leased.connectionClosed ? closedChecks + 1 : 0
                        if closedChecks >= 2, answer.resume(with: .failure(closedWhileWaiting)) {
                            work.cancel()
                            return
                        }
                    }
                }
                answer.onResume { watch.cancel() }
                answer.onCancel { work.cancel() }
            }
        } onCancel: {
            answer.cancel()
        }
    }

    /// The one answer a caller gets, whoever gives it first.
    private final class Answer<T: Sendable>: Sendable {
        private struct State {
            var continuation: CheckedContinuation<T, any Error>?
            var pending: Result<T, any Error>?
            var done = false
            var cancelled = false
            var afterResume: [@Sendable () -> Void] = []
            var afterCancel: [@Sendable () -> Void] = []
        }
        private let state = Mutex(State())

        func attach(_ continuation: CheckedContinuation<T, any Error>) {
            let ready = state.withLock { state -> Result<T, any Error>? in
                if let pending = state.pending { return pending }
                if state.cancelled {
                    state.done = true
                    return .failure(CancellationError())
                }
                state.continuation = continuation
                return nil
            }
            if let ready { continuation.resume(with: ready) }
        }

        /// Answers the caller unless it was answered already; true when this call answered.
        @discardableResult
        func resume(with result: Result<T, any Error>) -> Bool {
            let (continuation, hooks, answered) = state.withLock {
                state -> (CheckedContinuation<T, any Error>?, [@Sendable () -> Void], Bool) in
                guard !state.done else { return (nil, [], false) }
                state.done = true
                let hooks = state.afterResume
                state.afterResume = []
                guard let continuation = state.continuation else {
                    state.pending = result
                    return (nil, hooks, true)
                }
                state.continuation = nil
                return (continuation, hooks, true)
            }
            continuation?.resume(with: result)
            for hook in hooks { hook() }
            return answered
        }

        func onResume(_ hook: @escaping @Sendable () -> Void) {
            let runNow = state.withLock { state -> Bool in
                if state.done { return true }
                state.afterResume.append(hook)
                return false
            }
            if runNow { hook() }
        }

        func onCancel(_ hook: @escaping @Sendable () -> Void) {
            let runNow = state.withLock { state -> Bool in
                if state.cancelled { return true }
                state.afterCancel.append(hook)
                return false
            }
            if runNow { hook() }
        }

        /// The caller's task was cancelled: it is answered with CancellationError, and the work stops.
        func cancel() {
            let hooks = state.withLock { state -> [@Sendable () -> Void] in
                state.cancelled = true
                let hooks = state.afterCancel
                state.afterCancel = []
                return hooks
            }
            resume(with: .failure(CancellationError()))
            for hook in hooks { hook() }
        }
    }
}

/// The statements of one PostgreSQL transaction.
private struct PostgresSession: LedgerSession {
    let connection: PostgresConnection
    let logger: Logger
    var dialect: SQLDialect { .postgres }

    func query(_ sql: String, _ binds: [SQLValue]) async throws -> [SQLRow] {
        let rows = try await connection.query(Self.makeQuery(sql, binds), logger: logger)
        var result: [SQLRow] = []
        for try await row in rows {
            var values: [SQLValue] = []
            for cell in row { values.append(try Self.value(cell)) }
            result.append(SQLRow(values: values))
        }
        return result
    }

    func execute(_ sql: String, _ binds: [SQLValue]) async throws {
        let rows = try await connection.query(Self.makeQuery(sql, binds), logger: logger)
        for try await _ in rows {}
    }

    private static func makeQuery(_ sql: String, _ binds: [SQLValue]) -> PostgresQuery {
        var bindings = PostgresBindings(capacity: binds.count)
        for value in binds {
            switch value {
            case .int(let value): bindings.append(value)
            case .text(let value): bindings.append(value)
            case .bytes(let value): bindings.append(ByteBuffer(bytes: value))
            case .null: bindings.appendNull()
            case .intArray(let values): bindings.append(values)
            case .textArray(let values): bindings.append(values)
            case .boolArray(let values): bindings.append(values)
            }
        }
        return PostgresQuery(unsafeSQL: sql, binds: bindings)
    }

    private static func value(_ cell: PostgresCell) throws -> SQLValue {
        guard cell.bytes != nil else { return .null }
        switch cell.dataType {
        case .int8: return .int(try cell.decode(Int64.self))
        case .int4: return .int(Int64(try cell.decode(Int32.self)))
        case .int2: return .int(Int64(try cell.decode(Int16.self)))
        case .bool: return .int(try cell.decode(Bool.self) ? 1 : 0)
        case .text, .varchar, .name, .bpchar: return .text(try cell.decode(String.self))
        case .bytea: return .bytes(Array(try cell.decode(ByteBuffer.self).readableBytesView))
        default:
            throw LedgerError(
                .database, operation: "decode", "column \(cell.columnName) has unsupported type \(cell.dataType)")
        }
    }
}
