import AMQP
import Foundation
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import Testing

extension EndToEndTests {
    @Test(
        "a whole migration at debug level (producer, three workers, aggregator, report, verify) logs no password, no token and no email"
    )
    func noSecretsOrEmailsInLogs() async throws {
        let environment = EndToEnd.environment
        let amqpPassword = try #require(
            environment["AMQP_PASSWORD"], "AMQP_PASSWORD must be set by scripts/services.sh")
        let postgresPassword = try #require(environment["POSTGRES_PASSWORD"], "POSTGRES_PASSWORD must be set")
        try await withLedgerLocation(.postgres) { ledgerLocation in
            let ledger = try #require(ledgerLocation)
            try await Self.withDebugWorld(ledger: ledger) { world, connection in
                let site = world.site
                try await Self.appendPortalCustomers(to: world)
                // A site that fails one customer's creation once: the retry path logs its error too.
                try await EndToEnd.armSiteFaults(site, failures: 1, status: 500)
                let workers = try world.spawnWorkers(
                    3, executable: EndToEnd.executable, namePrefix: "debug-worker",
                    extraArguments: ["--log-level", "debug"])
                let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
                let common = [
                    "--ledger", ledger.description, "--log-level", "debug",
                ]
                let siteArguments = [
                    "--source", world.source.description, "--site-url", site.url, "--site-token-file",
                    world.tokenPath, "--site-id", world.siteLocation.siteId,
                ]
                var runs: [(String, EndToEnd.CommandResult)] = []
                let start = try await Self.run(
                    ["start", "--migration", "quiet"] + projects.flatMap { ["--project", $0] }
                        + ["--groups", "--group-membership", "--batch-size", "100"] + siteArguments + common,
                    environment: world.environment)
                runs.append(("start", start))
                #expect(start.status == 0, "\(start.error)")
                let aggregator = try await Self.run(
                    ["aggregator", "--migration", "quiet"] + common, environment: world.environment,
                    limit: .seconds(300))
                runs.append(("aggregator", aggregator))
                #expect(aggregator.output.contains("RECONCILED"), "\(aggregator.output)\(aggregator.error)")
                let attention = (world.directory as NSString).appendingPathComponent("attention.csv")
                let report = try await Self.run(
                    ["report", "--migration", "quiet", "--attention", attention] + common,
                    environment: world.environment)
                runs.append(("report", report))
                #expect(report.status == 0, "\(report.error)")
                let verify = try await Self.run(
                    ["verify", "--migration", "quiet"] + siteArguments + common, environment: world.environment)
                runs.append(("verify", verify))
                #expect(verify.status == 0, "\(verify.output)\(verify.error)")
                await workers.terminate()

                var logs: [(String, String)] = runs.flatMap { name, run in
                    [("\(name) stdout", run.output), ("\(name) stderr", run.error)]
                }
                for index in 1...3 {
                    let path = (world.directory as NSString).appendingPathComponent("debug-worker-\(index).log")
                    logs.append(("worker \(index)", try String(contentsOfFile: path, encoding: .utf8)))
                }
                // The logs are real debug-level logs: the connection's debug line is in every worker's.
                for (name, text) in logs where name.hasPrefix("worker") {
                    #expect(text.contains("AMQP connection open"), "\(name) did not log at debug level")
                }

                // The portal customers were logged (masked): an anomaly by the producer, a refusal by a worker.
                #expect(start.error.contains("user_key=0***@example.com"), "\(start.error)")
                #expect(logs.contains { $0.0.hasPrefix("worker") && $0.1.contains("site refused an identity") })
                let emails = try await Self.sourceEmails(world)
                #expect(emails.count > 300, "the search needs the source's emails to look for")
                let secrets = [
                    "the AMQP password": amqpPassword, "the PostgreSQL password": postgresPassword,
                    "the site token": site.token,
                ]
                for (name, text) in logs {
                    for (secret, value) in secrets {
                        #expect(!text.contains(value), "\(name) contains \(secret)")
                    }
                    let leaked = Self.emails(emails, foundIn: text)
                    #expect(
                        leaked.isEmpty, "\(name) contains \(leaked.count) source emails, e.g. \(leaked.first ?? "")")
                }

                // The search itself finds emails where they are: the site's own listing holds the
                // normalised address of every account the migration created or linked.
                let listing = try await EndToEnd.siteAccounts(site).map(\.emailAddress).joined(separator: "\n")
                let mapped = try await EndToEnd.mappings(world.ledger, siteId: world.siteLocation.siteId).values
                    .filter { $0.outcome == .created || $0.outcome == .linked }
                #expect(mapped.count > 100)
                #expect(Self.emails(emails, foundIn: listing).count > 100)
            }
        }
    }

    /// Every email of the source, raw (trimmed, as an operator would search for it) and normalised.
    static func sourceEmails(_ world: LocalWorld) async throws -> Set<String> {
        try await world.source.withSource { jira in
            let classifier = try await jira.loadClassifier()
            var emails: Set<String> = []
            for try await classified in jira.classifiedIdentities(classifier: classifier) {
                if let raw = classified.identity.rawEmail?.trimmingCharacters(in: .whitespacesAndNewlines),
                    raw.count >= 6
                {
                    emails.insert(raw)
                }
                if let normalized = classified.identity.email?.value, normalized.count >= 6 {
                    emails.insert(normalized)
                }
                // A portal customer's user name (and a legacy user key) is the address they signed up with.
                for name in [classified.identity.userName, classified.identity.userKey] {
                    if let email = NormalizedEmail(name), email.validity == .valid {
                        emails.insert(name)
                        emails.insert(email.value)
                    }
                }
            }
            return emails
        }
    }

    /// Portal customers whose user name and legacy user key are their email, sorted first so the
    /// producer's anomaly log (its first 20) reaches them: one with no email (`missing_email`), one
    /// without an `app_user` row (`missing_app_user`), and one whose over-long display name the
    /// site refuses (a worker logs the refusal), referenced by a request so it is in scope.
    static func appendPortalCustomers(to world: LocalWorld) async throws {
        let path = (world.directory as NSString).appendingPathComponent("jira.sqlite")
        let script = """
            import sqlite3, sys
            c = sqlite3.connect(sys.argv[1], timeout=60)
            active = c.execute("SELECT id FROM cwd_directory WHERE active = 1 ORDER BY directory_position LIMIT 1").fetchone()[0]
            project = c.execute("SELECT id FROM project WHERE projecttype = 'service_desk' ORDER BY id LIMIT 1").fetchone()[0]
            issue = c.execute("SELECT COALESCE(MAX(id), 0) FROM jiraissue").fetchone()[0]
            app = c.execute("SELECT COALESCE(MAX(id), 0) FROM app_user").fetchone()[0]
            rows = [
                (9000001, "0Portal.NoMail@Example.com", None, "No Mail", True),
                (9000002, "0portal.orphan@example.com", "0portal.orphan@example.com", "Orphan", False),
                (9000003, "0portal.longname@example.com", "0portal.longname@example.com", "L" * 300, True),
            ]
            for i, (uid, name, email, display, has_app_user) in enumerate(rows):
                c.execute("INSERT INTO cwd_user (id, directory_id, user_name, lower_user_name, active, display_name, email_address, lower_email_address) VALUES (?,?,?,?,?,?,?,?)",
                          (uid, active, name, name.lower(), 1, display, email, email.lower() if email else None))
                if has_app_user:
                    c.execute("INSERT INTO app_user (id, user_key, lower_user_name) VALUES (?,?,?)", (app + 1 + i, name.lower(), name.lower()))
                issue += 1
                c.execute("INSERT INTO jiraissue (id, project, reporter, creator, assignee) VALUES (?,?,?,?,?)", (issue, project, name.lower(), None, None))
            c.commit()
            """
        let result = try await EndToEnd.runProcess(URL(fileURLWithPath: "/usr/bin/python3"), ["-c", script, path])
        guard result.status == 0 else { throw HarnessFailure("could not add the portal customers: \(result.error)") }
    }

    /// The emails of `emails` that occur in `text` (the text lower-cased too, so that no spelling escapes).
    static func emails(_ emails: Set<String>, foundIn text: String) -> [String] {
        let lowered = text.lowercased()
        return emails.filter { text.contains($0) || lowered.contains($0) }.sorted()
    }

    /// A world with a PostgreSQL ledger, no workers of its own (the test starts them at debug
    /// level) and a rate-limited site, so that throttling is logged too.
    static func withDebugWorld(ledger: LedgerLocation, _ body: (LocalWorld, AMQPConnection) async throws -> Void)
        async throws
    {
        let vhost = "jsm-quiet-\(UInt32.random(in: 0...UInt32.max))"
        let amqpURL = try await EndToEnd.createVhost(vhost)
        do {
            let configuration = LocalWorld.Configuration(
                directory: FileManager.default.temporaryDirectory.appendingPathComponent(vhost).path, users: 800,
                seed: 11, workers: 0, workerConcurrency: 2, executable: EndToEnd.executable,
                environment: EndToEnd.environment.merging(["AMQP_URL": amqpURL]) { _, new in new }, ledger: ledger,
                siteRequestsPerSecond: 150)
            try await LocalWorld.run(configuration, logger: EndToEnd.logger) { world in
                let connection = try await AMQPConnection.connect(try AMQPConfiguration(url: amqpURL))
                do {
                    try await body(world, connection)
                    await connection.close()
                } catch {
                    await connection.close()
                    throw error
                }
            }
            try? FileManager.default.removeItem(atPath: configuration.directory)
            try await EndToEnd.deleteVhost(vhost)
        } catch {
            try? await EndToEnd.deleteVhost(vhost)
            throw error
        }
    }

    /// Runs the built `jsm-migrate` (at most `limit`), capturing both streams.
    static func run(_ arguments: [String], environment: [String: String], limit: Duration = .seconds(120))
        async throws -> EndToEnd.CommandResult
    {
        try await EndToEnd.runCommand(arguments, environment: environment, limit: limit)
    }
}
