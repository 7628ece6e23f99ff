import Foundation
import JSMDomain

/// Reads the accounts a site should already hold when it starts (`--seed-accounts PATH`), so a demo
/// or test can show linking to existing Atlassian and customer accounts.
///
/// Two formats: JSON Lines (`{"email":…,"displayName":…,"accountType":"atlassian"|"customer"}`,
/// one object a line) when the file name ends in `.jsonl` or `.ndjson`, otherwise CSV
/// (`email,displayName,accountType`, an optional header line, RFC 4180 quoting).
public enum SeedAccounts {
    /// A line that cannot be seeded, with its number so the operator can fix the file.
    public struct Problem: Error, Sendable, CustomStringConvertible {
        /// The 1-based line number.
        public let line: Int
        /// What is wrong with it.
        public let message: String

        /// The line and the message.
        public var description: String { "seed file line \(line): \(message)" }
    }

    /// Parses a seed file's text; the file's name chooses the format.
    public static func parse(_ text: String, fileName: String) throws -> [NewSiteAccount] {
        let lowered = fileName.lowercased()
        let isJSONLines = lowered.hasSuffix(".jsonl") || lowered.hasSuffix(".ndjson")
        var accounts: [NewSiteAccount] = []
        for (index, rawLine) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let line = rawLine.hasSuffix("\r") ? rawLine.dropLast() : rawLine
            if line.allSatisfy(\.isWhitespace) { continue }
            let fields: (email: String?, displayName: String?, accountType: String?)
            if isJSONLines {
                fields = try jsonFields(String(line), line: index + 1)
            } else {
                let columns = try csvFields(String(line), line: index + 1)
                if index == 0, columns.first?.lowercased() == "email" { continue }
                guard columns.count == 3 else {
                    throw Problem(
                        line: index + 1,
                        message: "expected 3 columns (email,displayName,accountType), found \(columns.count)")
                }
                fields = (columns[0], columns[1], columns[2])
            }
            accounts.append(try account(fields, line: index + 1))
        }
        return accounts
    }

    private struct JSONSeed: Decodable {
        let email: String?
        let displayName: String?
        let accountType: String?
    }

    private static func jsonFields(_ line: String, line number: Int) throws -> (String?, String?, String?) {
        do {
            let seed = try JSONDecoder().decode(JSONSeed.self, from: Data(line.utf8))
            return (seed.email, seed.displayName, seed.accountType)
        } catch {
            throw Problem(line: number, message: "not a JSON object with string fields email, displayName, accountType")
        }
    }

    private static func account(_ fields: (email: String?, displayName: String?, accountType: String?), line: Int)
        throws
        -> NewSiteAccount
    {
        guard let email = NormalizedEmail(fields.email), email.validity == .valid else {
            throw Problem(line: line, message: "the email is missing or invalid")
        }
        guard let type = fields.accountType.flatMap({ CloudAccountType(rawValue: $0.lowercased()) }) else {
            throw Problem(line: line, message: "accountType must be atlassian or customer")
        }
        switch SiteValidation.displayName(fields.displayName, email: email, field: "displayName") {
        case .success(let name): return NewSiteAccount(type: type, email: email, displayName: name)
        case .failure(let problem): throw Problem(line: line, message: problem.message)
        }
    }

    /// Splits one CSV line, honouring double quotes and doubled quotes inside them.
    static func csvFields(_ line: String, line number: Int) throws -> [String] {
        var fields: [String] = []
        var current = ""
        var inQuotes = false
        var characters = line.makeIterator()
        while let character = characters.next() {
            switch (character, inQuotes) {
            case ("\"", true):
                // A doubled quote is a literal quote; anything else ends the quoted part.
                var lookahead = characters
                if lookahead.next() == "\"" {
                    current.append("\"")
                    characters = lookahead
                } else {
                    inQuotes = false
                }
            case ("\"", false) where current.isEmpty:
                inQuotes = true
            case (",", false):
                fields.append(current)
                current = ""
            default:
                current.append(character)
            }
        }
        guard !inQuotes else { throw Problem(line: number, message: "a quoted field is not closed") }
        fields.append(current)
        return fields
    }
}
