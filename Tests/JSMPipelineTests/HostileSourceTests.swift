import AMQP
import AsyncHTTPClient
import Foundation
import JSMContracts
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import JSMSource
import Testing

/// What the rules of DESIGN.md give one hostile source row.
enum HostileOutcome: Equatable, CustomStringConvertible {
    /// A customer account with this (normalised) email and display name.
    case created(email: String, displayName: String)
    /// No account, with this reason in the ledger.
    case rejected(reason: String)
    /// Mapped to the Former customer container.
    case former

    var description: String {
        switch self {
        case .created(let email, let name): "created \(email.prefix(80)) '\(name.prefix(40))'"
        case .rejected(let reason): "rejected \(reason)"
        case .former: "former"
        }
    }
}

/// One hostile `cwd_user` row (with its `app_user` row), and the outcome it must reach.
struct HostileRow {
    let id: Int64
    let userName: String?
    let email: String?
    let displayName: String?
    /// `cwd_user.active`; `nil` writes NULL.
    var active: Int64? = 1
    /// In the source's first active directory; `false` writes a NULL `directory_id`.
    var inActiveDirectory = true
    /// Writes a NULL `lower_email_address` beside the email.
    var lowerEmailIsNull = false
    /// Referenced as the reporter of a request (needed for a former to be in scope).
    var reportsARequest = false
    let expected: HostileOutcome

    var userKey: String { "JIRAUSER\(id)" }
}

/// The hostile rows of the issue's bad-input corpus.
enum HostileCorpus {
    static let hugeDisplayName = String(repeating: "Très long nom ", count: 5 * 1024 * 1024 / 15)
    static let sqlDisplayName = "Robert'); DROP TABLE cwd_user;--"
    static let shellDisplayName = "$(touch /tmp/jsm-corpus-pwned) `id`; rm -rf ~ | cat /etc/passwd"
    static let unicodeDisplayName = "Zoë 山田 Ñandú 🚀"
    /// 300 characters, local part 70: over Atlassian's 64.
    static let longLocalPart = String(repeating: "l", count: 70) + "@" + String(repeating: "d", count: 225) + ".com"
    /// 300 characters, local part 64: Atlassian's rule (and so the product) accepts it.
    static let longDomain = String(repeating: "m", count: 64) + "@" + String(repeating: "e", count: 231) + ".com"
    static let sharedEmail = "shared.mailbox@example.com"
    static let sharedCount = 10_000
    static let firstSharedId: Int64 = 8_100_000

    static let rows: [HostileRow] = [
        HostileRow(
            id: 8_000_001, userName: "hostile.unicode.local", email: "José.Núñez@example.com", displayName: "José",
            expected: .rejected(reason: "malformed_email")),
        HostileRow(
            id: 8_000_002, userName: "hostile.unicode.domain", email: "user@exämple.com", displayName: "User",
            expected: .rejected(reason: "malformed_email")),
        HostileRow(
            id: 8_000_003, userName: "hostile.unicode.name", email: "unicode.name@example.com",
            displayName: unicodeDisplayName,
            expected: .created(email: "unicode.name@example.com", displayName: unicodeDisplayName)),
        HostileRow(
            id: 8_000_004, userName: "hostile.spaces", email: " \t Spaced.Out@Example.com \n", displayName: "Spaced",
            expected: .created(email: "spaced.out@example.com", displayName: "Spaced")),
        HostileRow(
            id: 8_000_005, userName: "hostile.inner.space", email: "in side@example.com", displayName: "Inside",
            expected: .rejected(reason: "malformed_email")),
        HostileRow(
            id: 8_000_006, userName: "hostile.blank", email: "   ", displayName: "Blank",
            expected: .rejected(reason: "missing_email")),
        HostileRow(
            id: 8_000_007, userName: "HOSTILE.UPPER", email: "UPPER.CASE@EXAMPLE.COM", displayName: "UPPER",
            expected: .created(email: "upper.case@example.com", displayName: "UPPER")),
        HostileRow(
            id: 8_000_008, userName: "hostile.plus", email: "Plus.Person+Jira@Example.com", displayName: "Plus",
            expected: .created(email: "plus.person+jira@example.com", displayName: "Plus")),
        HostileRow(
            id: 8_000_009, userName: "hostile.plus.base", email: "plus.person@example.com", displayName: "Base",
            expected: .created(email: "plus.person@example.com", displayName: "Base")),
        HostileRow(
            id: 8_000_010, userName: "hostile.long.local", email: longLocalPart, displayName: "Long local",
            expected: .rejected(reason: "email_local_part_too_long")),
        HostileRow(
            id: 8_000_011, userName: "hostile.long.domain", email: longDomain, displayName: "Long domain",
            expected: .created(email: longDomain, displayName: "Long domain")),
        HostileRow(
            id: 8_000_012, userName: "hostile.null.email", email: nil, displayName: "No email",
            expected: .rejected(reason: "missing_email")),
        // A NULL display name: the site names the account after its email.
        HostileRow(
            id: 8_000_013, userName: "hostile.null.display", email: "null.display@example.com", displayName: nil,
            expected: .created(email: "null.display@example.com", displayName: "null.display@example.com")),
        HostileRow(
            id: 8_000_014, userName: "hostile.null.active", email: "null.active@example.com", displayName: "Active?",
            active: nil, expected: .created(email: "null.active@example.com", displayName: "Active?")),
        HostileRow(
            id: 8_000_015, userName: "hostile.null.lower", email: "Null.Lower@Example.com", displayName: "Lower",
            lowerEmailIsNull: true, expected: .created(email: "null.lower@example.com", displayName: "Lower")),
        // NULL directory: an unknown directory, so inactive; referenced by a request, so a former.
        HostileRow(
            id: 8_000_016, userName: "hostile.null.directory", email: "null.directory@example.com",
            displayName: "Nowhere", inActiveDirectory: false, reportsARequest: true, expected: .former),
        HostileRow(
            id: 8_000_017, userName: "bobby'; DROP TABLE app_user; --", email: "bobby.tables@example.com",
            displayName: sqlDisplayName,
            expected: .created(email: "bobby.tables@example.com", displayName: sqlDisplayName)),
        HostileRow(
            id: 8_000_018, userName: "hostile.sql.email", email: "x'OR'1'='1@example.com", displayName: "x",
            expected: .rejected(reason: "malformed_email")),
        HostileRow(
            id: 8_000_019, userName: "$(reboot)", email: "shell.user@example.com", displayName: shellDisplayName,
            expected: .created(email: "shell.user@example.com", displayName: shellDisplayName)),
        HostileRow(
            id: 8_000_020, userName: "hostile.shell.email", email: "$(reboot)@example.com", displayName: "x",
            expected: .rejected(reason: "malformed_email")),
        HostileRow(
            id: 8_000_021, userName: "hostile.percent", email: "100%real@example.com", displayName: "Percent",
            expected: .created(email: "100%real@example.com", displayName: "Percent")),
        // 5 MB of display name: Atlassian accepts at most 255 characters, so the site refuses the
        // account; the identity is rejected and reported, the batch and the worker go on.
        HostileRow(
            id: 8_000_022, userName: "hostile.huge.name", email: "huge.name@example.com", displayName: hugeDisplayName,
            expected: .rejected(reason: "site_refused")),
    ]

    /// The 10,000 identities of one mailbox, spelled three ways.
    static var sharedRows: [HostileRow] {
        let spellings = ["Shared.Mailbox@Example.com", " shared.mailbox@example.com ", "SHARED.MAILBOX@EXAMPLE.COM"]
        return (0..<sharedCount).map { index in
            HostileRow(
                id: firstSharedId + Int64(index), userName: "hostile.shared.\(index)",
                email: spellings[index % spellings.count], displayName: "Shared \(index)",
                expected: .created(email: sharedEmail, displayName: "Shared 0"))
        }
    }
}

extension EndToEndTests {
    @Test(
        "a source of hostile rows (unicode, spaces, case, plus, 300 characters, NULLs, 10,000 on one email, 5 MB, SQL and shell) migrates, reconciles and verifies"
    )
    func hostileSource() async throws {
        try await EndToEnd.withWorld(users: 300, workers: 2) { world, connection in
            let sourcePath = (world.directory as NSString).appendingPathComponent("jira.sqlite")
            try await Self.appendHostileRows(to: sourcePath)
            let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
            let request = world.request(
                "hostile", projects: projects,
                scope: ScopeOptions(customers: .all, includeRequestless: true, users: .all),
                batchSize: 200)
            let (_, verdict) = try await world.migrate(request, connection: connection, timeout: .seconds(600))
            #expect(verdict.reconciled && verdict.repliesMatchLedger && verdict.totals.invariantHolds)
            #expect(verdict.batchStates[.parked, default: 0] == 0, "no batch may be parked")
            #expect(verdict.state == .incomplete, "the rejected rows finish the migration with errors")
            #expect(world.workers.exited.isEmpty, "a hostile row took a worker down: see worker-*.log")

            let mappings = try await EndToEnd.mappings(world.ledger, siteId: world.siteLocation.siteId)
            let accounts = try await Self.siteAccountsWithNames(world.site)
            let byId = Dictionary(accounts.map { ($0.accountId, $0) }) { first, _ in first }
            for row in HostileCorpus.rows {
                let mapping = try #require(mappings[row.userKey], "\(row.userName ?? "NULL") has no mapping row")
                switch row.expected {
                case .created(let email, let displayName):
                    #expect(mapping.outcome == .created, "\(row.userKey): \(mapping.outcome) \(mapping.reason ?? "")")
                    let account = try #require(byId[mapping.accountId ?? ""], "\(row.userKey)'s account on the site")
                    #expect(account.accountType == "customer" && account.emailAddress == email, "\(row.userKey)")
                    #expect(account.displayName == displayName, "\(row.userKey)")
                case .rejected(let reason):
                    #expect(mapping.outcome == .rejected && mapping.reason == reason, "\(row.userKey): \(mapping)")
                    #expect(mapping.accountId == nil)
                case .former:
                    #expect(mapping.outcome == .former, "\(row.userKey): \(mapping.outcome)")
                }
            }
            #expect(!FileManager.default.fileExists(atPath: "/tmp/jsm-corpus-pwned"))
            // Each rejected or former row is a reported row of the requires-attention CSV, with its reason.
            let attentionPath = (world.directory as NSString).appendingPathComponent("attention.csv")
            try await ReportExports.writeAttention(ledger: world.ledger, migrationId: "hostile", to: attentionPath)
            let attention = CSV.parse(try String(contentsOfFile: attentionPath, encoding: .utf8))
            #expect(attention.first == ReportExports.attentionHeader)
            for row in HostileCorpus.rows {
                // key, category, outcome, flags, reason, cloud_id, batch_id
                let record = attention.first { $0.first == row.userKey }
                switch row.expected {
                case .created: #expect(record == nil, "\(row.userKey) needs no attention")
                case .rejected(let reason):
                    #expect(record?[2] == "rejected" && record?[4] == reason, "\(row.userKey): \(record ?? [])")
                case .former: #expect(record?[2] == "former", "\(row.userKey): \(record ?? [])")
                }
            }
            #expect(!accounts.contains { $0.emailAddress == "huge.name@example.com" })
            // A site refusal keeps the site's own reason, for the operator who reads the batch's result.
            let refused = try #require(attention.first { $0.first == "JIRAUSER8000022" })
            let stored = try #require(
                try await world.ledger.completedResult(migrationId: "hostile", batchId: refused[6]))
            let result = try JSMBatchResult(serializedBytes: stored).results.first { $0.userKey == "JIRAUSER8000022" }
            #expect(
                result?.detail
                    == "site refused: invalid_request 400: The field 'displayName' must be at most 255 characters.",
                "\(result?.detail ?? "no result")")
            // The 5 MB name travelled as its first 1,024 characters: claims, ledger and batch
            // messages stay small whatever the source holds.
            let batched = try await EndToEnd.scope(world.ledger, "hostile")
            let huge = try #require(batched.first { $0.userKey == "JIRAUSER8000022" })
            #expect(huge.displayName.count == JiraSource.displayNameCharacterLimit)
            #expect(batched.allSatisfy { $0.displayName.utf8.count <= 4 * JiraSource.displayNameCharacterLimit })

            // 10,000 identities of one mailbox: one batch, one account, one primary, the rest merged into it.
            let shared = HostileCorpus.sharedRows.compactMap { mappings[$0.userKey] }
            #expect(shared.count == HostileCorpus.sharedCount)
            let sharedAccounts = accounts.filter { $0.emailAddress == HostileCorpus.sharedEmail }
            #expect(sharedAccounts.count == 1)
            #expect(sharedAccounts.first?.displayName == "Shared 0", "the primary is the smallest user key")
            #expect(shared.allSatisfy { $0.accountId == sharedAccounts.first?.accountId })
            #expect(shared.filter { $0.outcome == .created }.count == 1)
            #expect(
                shared.filter { $0.outcome == .linked && $0.flags.contains(.merged) }.count == HostileCorpus.sharedCount
                    - 1)
            let sharedBatches = Set(shared.map(\.batchId))
            #expect(sharedBatches.count == 1, "one email is never split across batches")

            // verify recounts the source and the site independently of the messages, and agrees.
            let verification = try await world.source.withSource { jira in
                try await MigrationVerification.verify(
                    ledger: world.ledger, migrationId: "hostile", source: jira, site: world.siteLocation)
            }
            #expect(verification.passed, "\(verification.rendered())")
        }
    }

    /// Appends the hostile corpus to a generated source: users in its first active directory, their
    /// `app_user` rows, and requests with NULL people in its first service project.
    static func appendHostileRows(to sqlitePath: String) async throws {
        func json(_ value: String?) -> Any { value.map { $0 as Any } ?? NSNull() }
        let users = HostileCorpus.rows + HostileCorpus.sharedRows
        let rows: [[Any]] = users.map { row in
            [
                row.id, row.inActiveDirectory ? "$ACTIVE" : NSNull(), json(row.userName),
                json(row.userName?.lowercased()), row.active.map { $0 as Any } ?? NSNull(), json(row.displayName),
                json(row.email), row.lowerEmailIsNull ? NSNull() : json(row.email?.lowercased()), row.userKey,
                row.reportsARequest,
            ]
        }
        let file = URL(fileURLWithPath: sqlitePath + ".hostile.json")
        try JSONSerialization.data(withJSONObject: rows).write(to: file)
        defer { try? FileManager.default.removeItem(at: file) }
        let script = """
            import json, sqlite3, sys
            c = sqlite3.connect(sys.argv[1], timeout=60)
            active = c.execute("SELECT id FROM cwd_directory WHERE active = 1 ORDER BY directory_position LIMIT 1").fetchone()[0]
            project = c.execute("SELECT id FROM project WHERE projecttype = 'service_desk' ORDER BY id LIMIT 1").fetchone()[0]
            issue = c.execute("SELECT COALESCE(MAX(id), 0) FROM jiraissue").fetchone()[0]
            app = c.execute("SELECT COALESCE(MAX(id), 0) FROM app_user").fetchone()[0]
            participants = c.execute("SELECT id FROM customfield WHERE customfieldtypekey = 'com.atlassian.servicedesk:sd-request-participants'").fetchone()
            value = c.execute("SELECT COALESCE(MAX(id), 0) FROM customfieldvalue").fetchone()[0]
            rows = json.load(open(sys.argv[2]))
            for i, (uid, directory, name, lower, act, display, email, lower_email, key, reports) in enumerate(rows):
                c.execute("INSERT INTO cwd_user (id, directory_id, user_name, lower_user_name, active, display_name, email_address, lower_email_address) VALUES (?,?,?,?,?,?,?,?)",
                          (uid, active if directory == "$ACTIVE" else None, name, lower, act, display, email, lower_email))
                c.execute("INSERT INTO app_user (id, user_key, lower_user_name) VALUES (?,?,?)", (app + 1 + i, key, lower))
                if reports:
                    issue += 1
                    c.execute("INSERT INTO jiraissue (id, project, reporter, creator, assignee) VALUES (?,?,?,?,?)", (issue, project, key, None, None))
            # NULL people everywhere a request can have them.
            issue += 1
            c.execute("INSERT INTO jiraissue (id, project, reporter, creator, assignee) VALUES (?,?,?,?,?)", (issue, project, None, None, None))
            if participants:
                c.execute("INSERT INTO customfieldvalue (id, issue, customfield, stringvalue) VALUES (?,?,?,?)", (value + 1, issue, participants[0], None))
            c.execute("INSERT INTO app_user (id, user_key, lower_user_name) VALUES (?,?,?)", (app + len(rows) + 1, None, None))
            c.commit()
            """
        let result = try await EndToEnd.runProcess(
            URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script, sqlitePath, file.path])
        guard result.status == 0 else { throw HarnessFailure("could not append the hostile rows: \(result.error)") }
    }

    /// One account of the local site's listing, with its display name.
    struct NamedSiteAccount: Decodable {
        let accountId: String
        let accountType: String
        let emailAddress: String
        let displayName: String
    }

    /// Every account of the site with its display name (`/_local/v1/accounts`, paged).
    static func siteAccountsWithNames(_ site: LocalSite) async throws -> [NamedSiteAccount] {
        try await EndToEnd.siteAccounts(site, as: NamedSiteAccount.self)
    }
}
