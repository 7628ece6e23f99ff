import Foundation
import Testing

@testable import JSMLedger

/// What a worker sees when PostgreSQL is not there: a clear, retriable error, and nothing lost.
@Suite("Ledger on an unreachable or failing PostgreSQL")
struct PostgresAvailabilityTests {
    @Test("a closed port gives a retriable 'unavailable' error naming the operation, without the password")
    func closedPort() async throws {
        let port = try closedLoopbackPort()
        let configuration = PostgresLedgerConfiguration(
            host: "127.0.0.1", port: port, username: "jsm", password: "s3cret-password", database: "jsm",
            schema: "ledger_unreachable", leaseTimeout: .seconds(2), connectTimeout: .seconds(1))
        // No timed assertion (shared, noisy machines): the wait is bounded by the lease deadline's
        // race in PostgresLedgerDatabase, and the test would hang past the suite's limit without it.
        let error = await #expect(throws: LedgerError.self) {
            try await Ledger.withPostgres(configuration) { _ in }
        }
        #expect(error?.code == .unavailable)
        #expect(error?.isRetriable == true)
        #expect(error?.operation == "migrateSchema")
        #expect(error?.description.contains("127.0.0.1:\(port)") == true)
        #expect(error?.description.contains("s3cret") == false)
        #expect(configuration.description.contains("s3cret") == false)
    }

    @Test("a wrong password or an unknown database is refused at once as login_refused, not retried as unavailable")
    func loginRefused() async throws {
        let environment = ProcessInfo.processInfo.environment
        var wrongPassword = PostgresLedgerConfiguration(environment: environment, schema: "ledger_refused")
        wrongPassword.password = "not-the-password-\(UInt32.random(in: 0...UInt32.max))"
        var unknownDatabase = PostgresLedgerConfiguration(environment: environment, schema: "ledger_refused")
        unknownDatabase.database = "jsm_no_such_database"
        for (configuration, state) in [(wrongPassword, "28P01"), (unknownDatabase, "3D000")] {
            // Without the login check the pool would retry until this lease ran out: `unavailable`.
            var configuration = configuration
            configuration.leaseTimeout = .seconds(30)
            let error = await #expect(throws: LedgerError.self) {
                try await Ledger.withPostgres(configuration) { _ in }
            }
            #expect(error?.code == .loginRefused)
            #expect(error?.isRetriable == false)
            #expect(error?.operation == "open")
            #expect(error?.message.contains("SQLSTATE \(state)") == true, "\(String(describing: error))")
            #expect(error?.message.contains("role '\(configuration.username)'") == true)
            #expect(error?.message.contains("database '\(configuration.database ?? "")'") == true)
            #expect(error?.description.contains("not-the-password") == false)
        }
    }

    @Test("a connection lost inside a transaction is retriable and rolls the transaction back")
    func lostConnection() async throws {
        try await withTestLedger(.postgres) { ledger in
            _ = try await ledger.createOrResumeMigration(definition("m1"))
            let error = await #expect(throws: LedgerError.self) {
                try await ledger.database.transaction("terminate") { session in
                    try await session.execute("UPDATE ledger_migrations SET state = 'failed'", [])
                    try await session.execute("SELECT pg_terminate_backend(pg_backend_pid())", [])
                }
            }
            #expect(error?.isRetriable == true)
            #expect(error?.operation == "terminate")
            // The pool replaces the dead connection; until it notices, a read may fail retriably,
            // which is what a worker retries. The aborted update must be gone either way.
            let migration = try await readRetrying { try await ledger.migration("m1") }
            #expect(migration?.state == .saved)
        }
    }
}

extension PostgresAvailabilityTests {
    @Test("a serialization failure is a retriable conflict")
    func serializationFailure() async throws {
        try await withTestLedger(.postgres) { ledger in
            let error = await #expect(throws: LedgerError.self) {
                try await ledger.database.transaction("conflict") { session in
                    try await session.execute(
                        "DO $$ BEGIN RAISE EXCEPTION 'concurrent update' USING ERRCODE = 'serialization_failure'; END $$",
                        [])
                }
            }
            #expect(error?.code == .transactionConflict)
            #expect(error?.isRetriable == true)
            #expect(error?.message.contains("40001") == true)
        }
    }
}

/// Runs a read until it succeeds or fails for a reason that is not retriable (at most 50 tries, 100 ms apart).
private func readRetrying<T>(_ read: () async throws -> T) async throws -> T {
    for _ in 1..<50 {
        do {
            return try await read()
        } catch let error as LedgerError where error.isRetriable {
            try await Task.sleep(for: .milliseconds(100))
        }
    }
    return try await read()
}

/// A loopback port nobody listens on: bound, then released.
private func closedLoopbackPort() throws -> Int {
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard descriptor >= 0 else { throw POSIXError(.EMFILE) }
    defer { close(descriptor) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else { throw POSIXError(.EADDRINUSE) }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let named = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
    }
    guard named == 0 else { throw POSIXError(.EINVAL) }
    return Int(UInt16(bigEndian: address.sin_port))
}
