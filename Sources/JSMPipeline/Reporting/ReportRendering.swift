import Foundation
import JSMDomain
import JSMLedger

/// How `report` prints its summary: a table for people, JSON and CSV for tools.
public enum ReportFormat: String, Sendable, Hashable, CaseIterable {
    /// Aligned tables.
    case text
    /// One JSON object with stable, sorted keys.
    case json
    /// One CSV table: the migration's rows, then each project's.
    case csv
}

extension MigrationReport {
    /// The columns every totals row has, in order, as the JSON keys and CSV headers spell them.
    public static let tallyColumns = [
        "in_scope", "created", "linked", "former", "rejected", "already_migrated", "pending",
    ]

    static func values(_ tally: OutcomeTally) -> [Int] {
        [
            tally.inScope, tally.created, tally.linked, tally.former, tally.rejected, tally.alreadyMigrated,
            tally.pending,
        ]
    }

    /// The report in `format`, ending with a newline.
    public func rendered(as format: ReportFormat) -> String {
        switch format {
        case .text: return text()
        case .json: return json()
        case .csv: return csv()
        }
    }

    // MARK: Text

    func text() -> String {
        var lines: [String] = []
        let done =
            "\(batchesDone) of \(batchesTotal)" + (batchesStuck > 0 ? " (\(batchesStuck) parked or discarded)" : "")
        lines.append("Migration \(migration.id) on site \(migration.siteId)")
        lines.append("  state: \(migration.state.rawValue), phase: \(migration.phase.rawValue), batches done: \(done)")
        lines.append(
            "  scope: --customers \(migration.scope.customers.rawValue)"
                + (migration.scope.includeRequestless ? " --include-requestless" : "")
                + " --users \(migration.scope.users.rawValue), \(migration.projectCount) selected project(s)")
        lines.append("")
        let headers = ["category"] + Self.tallyColumns + ["balances"]
        lines += Self.table(
            headers: headers,
            rows: totals.map { row in
                [row.label] + Self.values(row.tally).map(String.init) + [row.tally.balances ? "yes" : "NO"]
            })
        if !projects.isEmpty {
            lines.append("")
            lines.append("Per project (the in-scope identities each project references):")
            var rows: [[String]] = []
            for project in projects {
                for row in project.rows {
                    rows.append(
                        [project.project.key, project.project.name, row.label] + Self.values(row.tally).map(String.init)
                            + [row.tally.balances ? "yes" : "NO"])
                }
            }
            lines += Self.table(headers: ["project", "name"] + headers, rows: rows)
        }
        if let groupTotals {
            lines.append("")
            lines += groupTotals.reportLines
        }
        lines.append("")
        if decidedWithoutMapping > 0 {
            lines.append("Decided identities without a mapping row: \(decidedWithoutMapping)")
        }
        lines.append(
            invariantHolds
                ? "Reconciliation invariant: holds (in scope = created + linked + former + rejected + already_migrated)"
                : "Reconciliation invariant: DOES NOT HOLD (\(overall.pending) identities pending, "
                    + "\(decidedWithoutMapping) decided without a mapping row)")
        return lines.joined(separator: "\n") + "\n"
    }

    /// Left-aligned text columns, numbers right-aligned.
    static func table(headers: [String], rows: [[String]]) -> [String] {
        var widths = headers.map(\.count)
        for row in rows {
            for (index, cell) in row.enumerated() where index < widths.count {
                widths[index] = max(widths[index], cell.count)
            }
        }
        func format(_ cells: [String]) -> String {
            cells.enumerated().map { index, cell in
                let padding = String(repeating: " ", count: max(0, widths[index] - cell.count))
                return Int(cell) != nil ? padding + cell : cell + padding
            }.joined(separator: "  ").trimmingCharacters(in: .whitespaces)
        }
        return [format(headers), format(widths.map { String(repeating: "-", count: $0) })] + rows.map(format)
    }

    // MARK: JSON

    struct JSONTally: Encodable {
        let tally: OutcomeTally

        func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: DynamicKey.self)
            for (column, value) in zip(MigrationReport.tallyColumns, MigrationReport.values(tally)) {
                try container.encode(value, forKey: DynamicKey(column))
            }
            try container.encode(tally.balances, forKey: DynamicKey("balances"))
        }
    }

    struct DynamicKey: CodingKey {
        let stringValue: String
        var intValue: Int? { nil }
        init(_ name: String) { stringValue = name }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    struct JSONReport: Encodable {
        struct Migration: Encodable {
            let id: String
            let siteId: String
            let state: String
            let phase: String
            let customersOption: String
            let includeRequestless: Bool
            let usersOption: String
            let projectCount: Int
            let batchesDone: Int
            let batchesTotal: Int
            let batchesParkedOrDiscarded: Int
        }

        struct Project: Encodable {
            let id: Int64
            let key: String
            let name: String
            let serviceProject: Bool
            let totals: [String: JSONTally]
        }

        let migration: Migration
        let totals: [String: JSONTally]
        let projects: [Project]
        let invariantHolds: Bool
        let decidedWithoutMapping: Int
        let groups: GroupTally?
        let memberships: MembershipTally?
    }

    func json() -> String {
        func tallies(_ rows: [ReportTally]) -> [String: JSONTally] {
            Dictionary(uniqueKeysWithValues: rows.map { ($0.label, JSONTally(tally: $0.tally)) })
        }
        let report = JSONReport(
            migration: .init(
                id: migration.id, siteId: migration.siteId, state: migration.state.rawValue,
                phase: migration.phase.rawValue, customersOption: migration.scope.customers.rawValue,
                includeRequestless: migration.scope.includeRequestless, usersOption: migration.scope.users.rawValue,
                projectCount: migration.projectCount, batchesDone: batchesDone, batchesTotal: batchesTotal,
                batchesParkedOrDiscarded: batchesStuck),
            totals: tallies(totals),
            projects: projects.map {
                .init(
                    id: $0.project.id, key: $0.project.key, name: $0.project.name,
                    serviceProject: $0.project.isServiceProject, totals: tallies($0.rows))
            },
            invariantHolds: invariantHolds, decidedWithoutMapping: decidedWithoutMapping,
            groups: groupTotals?.groups, memberships: groupTotals?.memberships)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        encoder.keyEncodingStrategy = .convertToSnakeCase
        // Plain strings, numbers and booleans: encoding cannot fail.
        let data = (try? encoder.encode(report)) ?? Data("{}".utf8)
        return String(decoding: data, as: UTF8.self) + "\n"
    }

    // MARK: CSV

    /// The CSV's header: `scope` is `migration` or `project`; project columns are empty on the
    /// migration's rows.
    public static let csvHeader =
        ["scope", "project_id", "project_key", "project_name", "category"] + tallyColumns + ["balances"]

    func csv() -> String {
        var text = CSV.line(Self.csvHeader)
        for row in totals {
            text += CSV.line(
                ["migration", "", "", "", row.label] + Self.values(row.tally).map(String.init)
                    + [String(row.tally.balances)])
        }
        for project in projects {
            for row in project.rows {
                text += CSV.line(
                    ["project", String(project.project.id), project.project.key, project.project.name, row.label]
                        + Self.values(row.tally).map(String.init) + [String(row.tally.balances)])
            }
        }
        return text
    }
}

extension GroupPhaseTotals {
    /// The group line and the membership line of the text report; `start --dry-run --groups`
    /// prints the same lines, so a prediction and the report it predicts read alike.
    public var reportLines: [String] {
        [
            "Groups: \(groups.inScope) in scope: \(groups.created) created, \(groups.reused) reused "
                + "(\(groups.escalationRisks) with a permission-escalation risk: see the attention CSV), "
                + "\(groups.alreadyMigrated) already migrated, \(groups.rejected) rejected; balances: "
                + (groups.balances ? "yes" : "NO"),
            "Memberships: \(memberships.inScope) in scope: \(memberships.added) added, \(memberships.alreadyMember) "
                + "already members, \(memberships.alreadyMigrated) already migrated, \(memberships.skipped) skipped "
                + "(no account, customer account or no group), \(memberships.rejected) rejected; balances: "
                + (memberships.balances ? "yes" : "NO"),
        ]
    }
}
