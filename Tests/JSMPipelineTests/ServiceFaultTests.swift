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
}
