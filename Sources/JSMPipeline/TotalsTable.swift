import JSMDomain
import JSMLedger

/// The reconciliation table operators read: one row per category and a total row, with the
/// invariant checked on each row.
public enum TotalsTable {
    /// The categories in the order the table shows them, with their row names.
    static let rows: [(ScopeCategory, String)] = [
        (.customer, "customers"), (.licensedUser, "licensed users"), (.former, "formers"),
    ]

    /// Renders `byCategory` as an aligned text table.
    public static func render(_ byCategory: [ScopeCategory: OutcomeTally]) -> String {
        let headers = ["in scope", "created", "linked", "former", "rejected", "already", "pending"]
        var lines = ["class".padding(toLength: 16, withPad: " ", startingAt: 0) + headers.map { pad($0) }.joined()]
        func line(_ name: String, _ tally: OutcomeTally) -> String {
            let cells = [
                tally.inScope, tally.created, tally.linked, tally.former, tally.rejected, tally.alreadyMigrated,
                tally.pending,
            ]
            return name.padding(toLength: 16, withPad: " ", startingAt: 0) + cells.map { pad(String($0)) }.joined()
                + "  " + (tally.balances ? "ok" : "NOT BALANCED")
        }
        var overall = OutcomeTally()
        for (category, name) in rows {
            let tally = byCategory[category] ?? OutcomeTally()
            lines.append(line(name, tally))
            overall = overall + tally
        }
        lines.append(line("total", overall))
        return lines.joined(separator: "\n")
    }

    private static func pad(_ text: String) -> String {
        String(repeating: " ", count: max(0, 10 - text.count)) + text
    }
}
