import Foundation
import JSMDomain
import JSMLedger
import JSMPipeline
import Testing

@Suite("report: totals, per-project table and CSV exports, from the ledger")
struct ReportTests {
    @Test("the report's totals, projects and batches are the ledger's", arguments: LedgerBackend.allCases)
    func totalsAreTheLedgers(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend) { world in
            let report = try await MigrationReport.load(from: world.ledger, migrationId: world.migrationId)
            let totals = try await world.ledger.totals(migrationId: world.migrationId)
            // The world is not trivial: every outcome the rules give is represented.
            #expect(totals.overall.inScope > 50)
            #expect(totals.overall.created > 0 && totals.overall.linked > 0 && totals.overall.former > 0)
            #expect(totals.overall.rejected > 0)
            for (label, category) in MigrationReport.categories {
                #expect(report.totals.first { $0.label == label }?.tally == totals.byCategory[category], "\(label)")
            }
            #expect(report.overall == totals.overall)
            #expect(report.invariantHolds == totals.invariantHolds && report.invariantHolds)
            #expect(report.decidedWithoutMapping == 0)
            #expect(report.projects.map(\.project.id).sorted() == world.projects.map(\.id).sorted())
            for project in report.projects {
                #expect(project.project.key == world.projects.first { $0.id == project.project.id }?.key)
                for (label, category) in MigrationReport.categories {
                    #expect(
                        project.rows.first { $0.label == label }?.tally
                            == totals.byProject[project.project.id]?[category],
                        "\(project.project.key) \(label)")
                }
            }
            let batches = try await world.ledger.batches(migrationId: world.migrationId, limit: 100_000)
            #expect(report.batchesTotal == batches.count && report.batchesTotal > 1)
            #expect(report.batchesDone == batches.filter { $0.state == .done }.count)
            #expect(report.migration.state == .incomplete)
            let text = report.rendered(as: .text)
            #expect(text.contains("Reconciliation invariant: holds"))
            #expect(text.contains("batches done: \(batches.count) of \(batches.count)"))
            #expect(!text.contains("@"), "the text report never prints an email")
        }
    }

    @Test("JSON and CSV parse back to the same numbers", arguments: LedgerBackend.allCases)
    func jsonAndCSVParseBack(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend) { world in
            let report = try await MigrationReport.load(from: world.ledger, migrationId: world.migrationId)

            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(report.rendered(as: .json).utf8)) as? [String: Any])
            #expect(
                Set(json.keys) == ["migration", "totals", "projects", "invariant_holds", "decided_without_mapping"])
            #expect(json["invariant_holds"] as? Bool == true)
            let migration = try #require(json["migration"] as? [String: Any])
            #expect(migration["id"] as? String == world.migrationId)
            #expect(migration["batches_done"] as? Int == report.batchesDone)
            let totals = try #require(json["totals"] as? [String: [String: Any]])
            for row in report.totals {
                expect(totals[row.label], equals: row.tally, "json \(row.label)")
            }
            let projects = try #require(json["projects"] as? [[String: Any]])
            #expect(projects.count == report.projects.count)
            for (object, project) in zip(projects, report.projects) {
                #expect(object["key"] as? String == project.project.key)
                let rows = try #require(object["totals"] as? [String: [String: Any]])
                for row in project.rows { expect(rows[row.label], equals: row.tally, "json \(project.project.key)") }
            }

            let records = CSV.parse(report.rendered(as: .csv))
            #expect(records.first == MigrationReport.csvHeader)
            let body = records.dropFirst()
            #expect(body.count == report.totals.count + report.projects.count * report.totals.count)
            for row in report.totals {
                let record = try #require(body.first { $0[0] == "migration" && $0[4] == row.label })
                #expect(record[5...].map { $0 } == csvValues(row.tally), "csv \(row.label)")
            }
            for project in report.projects {
                for row in project.rows {
                    let record = try #require(
                        body.first { $0[0] == "project" && $0[2] == project.project.key && $0[4] == row.label })
                    #expect(record[3] == project.project.name)
                    #expect(record[5...].map { $0 } == csvValues(row.tally), "csv \(project.project.key) \(row.label)")
                }
            }
        }
    }

    @Test(
        "requires-attention CSV and mapping export hold every row, by user key, never an email",
        arguments: LedgerBackend.allCases)
    func exports(backend: LedgerBackend) async throws {
        // `all` takes every requesting customer and licensed user, so duplicate emails are in scope.
        try await ReportWorldBuilder.withWorld(backend, scope: ScopeOptions(customers: .all, users: .all)) { world in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-report-exports-\(UUID())")
            defer { try? FileManager.default.removeItem(at: folder) }
            let attentionPath = folder.appendingPathComponent("attention.csv").path
            let mappingsPath = folder.appendingPathComponent("mappings.csv").path
            let attentionRows = try await ReportExports.writeAttention(
                ledger: world.ledger, migrationId: world.migrationId, to: attentionPath)
            let mappingRows = try await ReportExports.writeMappings(
                ledger: world.ledger, migrationId: world.migrationId, to: mappingsPath)
            #expect(!FileManager.default.fileExists(atPath: attentionPath + ".partial"))

            let totals = try await world.ledger.totals(migrationId: world.migrationId).overall
            let attentionText = try String(contentsOfFile: attentionPath, encoding: .utf8)
            #expect(!attentionText.contains("@"))
            let attention = CSV.parse(attentionText)
            #expect(attention.first == ReportExports.attentionHeader)
            #expect(attention.count - 1 == attentionRows)
            let outcomes = attention.dropFirst().map { $0[2] }
            #expect(outcomes.filter { $0 == "rejected" }.count == totals.rejected)
            #expect(outcomes.filter { $0 == "former" }.count == totals.former)
            #expect(attention.dropFirst().contains { $0[3].contains("disabled") }, "the world has disabled accounts")
            #expect(attention.dropFirst().filter { $0[2] == "rejected" }.allSatisfy { !$0[4].isEmpty }, "a reason")
            let keys = attention.dropFirst().map { $0[0] }
            #expect(keys == keys.sorted() && Set(keys).count == keys.count)

            let mappings = CSV.parse(try String(contentsOfFile: mappingsPath, encoding: .utf8))
            #expect(mappings.first == ReportExports.mappingHeader)
            #expect(mappings.count - 1 == mappingRows)
            #expect(mappingRows == (try await world.ledger.mappingCount(siteId: world.siteId)))
            #expect(mappingRows == totals.accountedFor - totals.alreadyMigrated)
            for record in mappings.dropFirst() where record[3] == "created" || record[3] == "linked" {
                #expect(!record[1].isEmpty && ["atlassian", "customer"].contains(record[2]), "\(record[0])")
            }
            // One migration on a fresh site: its mapping rows are its decisions, so the two exports
            // must agree on who needs attention.
            let needingAttention = mappings.dropFirst().filter { record in
                ["rejected", "former"].contains(record[3])
                    || record[4].split(separator: "|").contains {
                        ["merged", "second_account", "disabled"].contains($0)
                    }
            }.map { $0[0] }
            #expect(keys == needingAttention)
        }
    }

    @Test("an unknown migration is a clear error, not a report of zeros", arguments: LedgerBackend.allCases)
    func unknownMigration(backend: LedgerBackend) async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-report-unknown-\(UUID())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        try await ReportWorldBuilder.withLedger(backend, folder: folder) { ledger, _ in
            await #expect(throws: PipelineError.self) {
                _ = try await MigrationReport.load(from: ledger, migrationId: "no-such-migration")
            }
            do {
                _ = try await MigrationReport.load(from: ledger, migrationId: "no-such-migration")
            } catch let error as PipelineError {
                #expect(error.code == .invalidOptions)
                #expect(error.message.contains("no-such-migration"))
            }
        }
    }

    @Test("the built command prints the report as JSON and writes both files", arguments: LedgerBackend.allCases)
    func command(backend: LedgerBackend) async throws {
        try await ReportWorldBuilder.withWorld(backend) { world in
            let folder = FileManager.default.temporaryDirectory.appendingPathComponent("jsm-report-cli-\(UUID())")
            defer { try? FileManager.default.removeItem(at: folder) }
            let attention = folder.appendingPathComponent("attention.csv").path
            let mappings = folder.appendingPathComponent("mappings.csv").path
            let run = try await CommandRun.jsmMigrate([
                "report", "--ledger", world.ledgerLocation, "--migration", world.migrationId, "--format", "json",
                "--attention", attention, "--mappings", mappings,
            ])
            #expect(run.status == 0, "\(run.standardError)")
            let json = try #require(
                try JSONSerialization.jsonObject(with: Data(run.standardOutput.utf8)) as? [String: Any])
            let totals = try await world.ledger.totals(migrationId: world.migrationId)
            let all = try #require((json["totals"] as? [String: [String: Any]])?["all"])
            #expect(all["in_scope"] as? Int == totals.overall.inScope)
            #expect(all["created"] as? Int == totals.overall.created)
            #expect(
                FileManager.default.fileExists(atPath: attention) && FileManager.default.fileExists(atPath: mappings))
            #expect(run.standardError.contains("mapping rows to \(mappings)"))

            let unknown = try await CommandRun.jsmMigrate([
                "report", "--ledger", world.ledgerLocation, "--migration", "no-such-migration",
            ])
            #expect(unknown.status != 0 && unknown.status < 128)
            #expect(unknown.standardError.contains("no migration 'no-such-migration'"), "\(unknown.standardError)")
            #expect(unknown.standardOutput.isEmpty)
        }
    }

    @Test("CSV quotes commas, quotes and line breaks, and reads them back")
    func csvQuoting() {
        let fields = ["plain", "a,b", "say \"hi\"", "two\nlines", "crlf\r\nend", " padded ", "", "ünïcødé"]
        let line = CSV.line(fields)
        #expect(line.hasSuffix("\r\n"))
        #expect(line.hasPrefix("plain,\"a,b\",\"say \"\"hi\"\"\",\"two\nlines\""))
        #expect(CSV.parse(line + CSV.line(["second", "row"])) == [fields, ["second", "row"]])
        #expect(CSV.field("JIRAUSER10001") == "JIRAUSER10001")
    }

    private func csvValues(_ tally: OutcomeTally) -> [String] {
        [
            tally.inScope, tally.created, tally.linked, tally.former, tally.rejected, tally.alreadyMigrated,
            tally.pending,
        ]
        .map(String.init) + [String(tally.balances)]
    }

    private func expect(
        _ object: [String: Any]?, equals tally: OutcomeTally, _ comment: String,
        sourceLocation: Testing.SourceLocation = #_sourceLocation
    ) {
        let expected: [String: Int] = [
            "in_scope": tally.inScope, "created": tally.created, "linked": tally.linked, "former": tally.former,
            "rejected": tally.rejected, "already_migrated": tally.alreadyMigrated, "pending": tally.pending,
        ]
        for (key, value) in expected {
            #expect(object?[key] as? Int == value, "\(comment) \(key)", sourceLocation: sourceLocation)
        }
        #expect(object?["balances"] as? Bool == tally.balances, "\(comment) balances", sourceLocation: sourceLocation)
    }
}
