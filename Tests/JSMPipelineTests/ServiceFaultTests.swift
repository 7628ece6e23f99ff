import Foundation
import JSMLedger
import JSMLocalRun
import JSMPipeline
import Testing

/// Issue 7's fault-injection scenarios that disturb the shared services: every broker connection
/// closed, the broker application stopped and started, the PostgreSQL ledger restarted. They would
/// break any other test running at the time, so scripts/test.sh runs them on their own, after
/// everything else (like ReconnectTests). Each one checks everything FaultSuite.run checks.
@Suite("Fault injection: broker and ledger outages (disruptive, run alone)", .serialized)
struct ServiceFaultTests {
    @Test("every broker connection closed at 1/3 and 2/3 of the batches: everyone reconnects, completes, reconciled")
    func brokerConnectionsClosed() async throws {
        let figures = try await FaultSuite.run(
            "broker-close-connections",
            injected: "rabbitmqctl close_all_connections at 1/3 and 2/3 of the batches (workers, aggregator, test)"
        ) { run, _ in
            var closes = 0
            for round in 1...2 {
                guard try await run.waitForProgress(Double(round) / 3) else { break }
                try await FaultSuite.services(["rabbitmqctl", "close_all_connections", "fault drill"])
                closes += 1
            }
            return FaultFigures(injections: closes)
        }
        #expect(figures.injections >= 1, "the migration ended before the connections were closed")
    }

    @Test("the broker stopped for 5 s and started again mid-migration: everyone reconnects, completes, reconciled")
    func brokerRestarted() async throws {
        let figures = try await FaultSuite.run(
            "broker-stop-start", injected: "rabbitmqctl stop_app at 1/2 of the batches, start_app 5 s later"
        ) { run, _ in
            guard try await run.waitForProgress(0.5) else { return FaultFigures(injections: 0) }
            try await FaultSuite.services(["rabbitmqctl", "stop_app"])
            do {
                try await Task.sleep(for: .seconds(5))
                try await FaultSuite.services(["rabbitmqctl", "start_app"])
            } catch {
                try? await FaultSuite.services(["rabbitmqctl", "start_app"])
                throw error
            }
            try await FaultSuite.services(["rabbitmqctl", "await_startup"])
            return FaultFigures(injections: 1)
        }
        #expect(figures.injections == 1, "the migration ended before the broker was stopped")
    }

    @Test("the PostgreSQL ledger restarted at 1/3 and 2/3 of the batches: retried, completes, reconciled")
    func ledgerRestarted() async throws {
        try await FaultSuite.withPostgresLedger { ledger in
            let figures = try await FaultSuite.run(
                "postgres-restart",
                injected: "scripts/services.sh restart-postgres (fast stop, start) at 1/3 and 2/3 of the batches",
                ledger: ledger
            ) { run, _ in
                var restarts = 0
                for round in 1...2 {
                    guard try await run.waitForProgress(Double(round) / 3) else { break }
                    try await FaultSuite.services(["restart-postgres"])
                    restarts += 1
                }
                return FaultFigures(injections: restarts)
            }
            #expect(figures.injections >= 1, "the migration ended before PostgreSQL was restarted")
        }
    }

    @Test("the ledger's password changed while it runs: retriable errors that name the refused login, then recovery")
    func ledgerPasswordRotated() async throws {
        try await FaultSuite.withPostgresLedger { location in
            try await location.withLedger(environment: EndToEnd.environment) { ledger in
                _ = try await ledger.migrationIds(inStates: [.running])
                let refused: LedgerError
                do {
                    // The role's password changes and its connections end, as a rotation would do.
                    try await FaultSuite.postgres(
                        "ALTER ROLE CURRENT_USER PASSWORD 'rotated-\(UInt32.random(in: 0...UInt32.max))'",
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            + "WHERE usename = current_user AND pid <> pg_backend_pid()")
                    refused = try await Self.firstLeaseExpiry { try await ledger.migrationIds(inStates: [.running]) }
                } catch {
                    try? await FaultSuite.services(["start"])
                    throw error
                }
                // services.sh start sets the role's password from its secret again.
                try await FaultSuite.services(["start"])
                #expect(refused.isRetriable)
                #expect(refused.message.contains("refused role"), "\(refused)")
                #expect(refused.message.contains("SQLSTATE 28P01"), "\(refused)")
                #expect(refused.message.contains("rotated-") == false)
                // Retriable meant it: with the password back, the same ledger works again.
                let recovered = try await Self.firstSuccess { try await ledger.migrationIds(inStates: [.running]) }
                #expect(recovered != nil, "the ledger did not recover after the password was restored")
            }
        }
    }

    /// The first error of `read` that is a lease expiry (at most 10 tries; a connection the pool
    /// has not yet noticed dead fails differently first).
    private static func firstLeaseExpiry(_ read: () async throws -> some Sendable) async throws -> LedgerError {
        var last: (any Error)?
        for _ in 0..<10 {
            do {
                _ = try await read()
            } catch let error as LedgerError where error.message.hasPrefix("no PostgreSQL connection") {
                return error
            } catch {
                last = error
            }
        }
        throw HarnessFailure("no lease expiry in 10 reads; last: \(String(describing: last))")
    }

    /// The first success of `read`, at most 30 tries 1 s apart.
    private static func firstSuccess<T: Sendable>(_ read: () async throws -> T) async throws -> T? {
        for _ in 0..<30 {
            if let value = try? await read() { return value }
            try await Task.sleep(for: .seconds(1))
        }
        return nil
    }
}
