import AMQP
import AsyncHTTPClient
import Foundation
import JSMDomain
import JSMLedger
import JSMLocalRun
import JSMPipeline
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// The end-to-end tests' world: their own RabbitMQ vhost (created through the management API and
/// deleted afterwards, so no other test or demo shares their queues), a generated source, the
/// local site in this process and `jsm-migrate worker` processes.
enum EndToEnd {
    static let environment = ProcessInfo.processInfo.environment
    static let logger: Logger = {
        var logger = Logger(label: "jsm.e2e")
        logger.logLevel = .warning
        return logger
    }()

    /// The built `jsm-migrate` beside the test bundle.
    static var executable: URL {
        URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("jsm-migrate")
    }

    /// Runs `body` in a fresh world with `workers` worker processes over a vhost of its own.
    static func withWorld<T: Sendable>(
        users: Int = 1_500, seed: UInt64 = 7, workers: Int = 2, ledger: LedgerLocation? = nil,
        siteRequestsPerSecond: Double? = nil, _ body: (LocalWorld, AMQPConnection) async throws -> T
    ) async throws -> T {
        let vhost = "jsm-e2e-\(UInt32.random(in: 0...UInt32.max))"
        let amqpURL = try await createVhost(vhost)
        do {
            var configuration = LocalWorld.Configuration(
                directory: FileManager.default.temporaryDirectory.appendingPathComponent(vhost).path, users: users,
                seed: seed, workers: workers, workerConcurrency: 2, executable: executable,
                environment: environment.merging(["AMQP_URL": amqpURL]) { _, new in new }, ledger: ledger,
                siteRequestsPerSecond: siteRequestsPerSecond)
            configuration.workerArguments = ["--log-level", "warning"]
            let result = try await LocalWorld.run(configuration, logger: logger) { world in
                let connection = try await AMQPConnection.connect(
                    try AMQPConfiguration(url: amqpURL), logger: logger)
                do {
                    let result = try await body(world, connection)
                    await connection.close()
                    return result
                } catch {
                    await connection.close()
                    throw error
                }
            }
            try? FileManager.default.removeItem(atPath: configuration.directory)
            try await deleteVhost(vhost)
            return result
        } catch {
            try? await deleteVhost(vhost)
            throw error
        }
    }

    // MARK: RabbitMQ management API

    private static func management(_ method: HTTPMethod, _ path: String, body: String?) async throws {
        guard let base = environment["JSM_RABBITMQ_MGMT_URL"], let user = environment["AMQP_USER"],
            let password = environment["AMQP_PASSWORD"]
        else {
            throw HarnessFailure(
                "JSM_RABBITMQ_MGMT_URL, AMQP_USER and AMQP_PASSWORD must be set: eval \"$(scripts/services.sh env)\"")
        }
        var request = HTTPClientRequest(url: base + path)
        request.method = method
        request.headers.add(
            name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        request.headers.add(name: "Content-Type", value: "application/json")
        if let body { request.body = .bytes(ByteBuffer(string: body)) }
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        guard (200..<300).contains(Int(response.status.code)) else {
            throw HarnessFailure("RabbitMQ management \(method) \(path) answered \(response.status.code)")
        }
    }

    /// Creates a vhost with full rights for the project's user; returns its AMQP URL.
    static func createVhost(_ vhost: String) async throws -> String {
        try await management(.PUT, "/api/vhosts/\(vhost)", body: nil)
        try await management(
            .PUT, "/api/permissions/\(vhost)/\(environment["AMQP_USER"] ?? "jsm")",
            body: #"{"configure":".*","write":".*","read":".*"}"#)
        guard let base = environment["AMQP_URL"], var components = URLComponents(string: base) else {
            throw HarnessFailure("AMQP_URL is not set: eval \"$(scripts/services.sh env)\"")
        }
        components.percentEncodedPath = "/" + vhost
        guard let url = components.string else { throw HarnessFailure("cannot build the vhost URL") }
        return url
    }

    static func deleteVhost(_ vhost: String) async throws {
        try await management(.DELETE, "/api/vhosts/\(vhost)", body: nil)
    }

    // MARK: The local site's own listing

    /// One account of the local site.
    struct SiteAccount: Decodable, Hashable {
        let accountId: String
        let accountType: String
        let emailAddress: String
    }

    /// Every account of the site, by paging its `/_local/v1/accounts` listing.
    static func siteAccounts(_ site: LocalSite) async throws -> [SiteAccount] {
        try await siteAccounts(site, as: SiteAccount.self)
    }

    /// Every account of the site as `Account` (the fields a test reads of each listed account).
    static func siteAccounts<Account: Decodable>(_ site: LocalSite, as: Account.Type) async throws -> [Account] {
        var accounts: [Account] = []
        var cursor: String?
        for _ in 0..<10_000 {
            var url = site.url + "/_local/v1/accounts?limit=1000"
            if let cursor { url += "&cursor=\(cursor)" }
            var request = HTTPClientRequest(url: url)
            request.headers.add(
                name: "Authorization",
                value: "Basic " + Data("e2e@example.com:\(site.token)".utf8).base64EncodedString())
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let body = try await response.body.collect(upTo: 64 << 20)
            let page = try JSONDecoder().decode(SiteAccountPage<Account>.self, from: Data(buffer: body))
            accounts += page.accounts
            guard let next = page.nextCursor else { break }
            cursor = next
        }
        return accounts
    }

    /// The site's own counts (`/_local/v1/counts`).
    struct SiteCounts: Decodable {
        let groups: Int
        let groupMemberships: Int
        let apiRequests: Int
    }

    /// The site's own counts of groups, memberships and Atlassian API requests received so far.
    static func siteCounts(_ site: LocalSite) async throws -> SiteCounts {
        var request = HTTPClientRequest(url: site.url + "/_local/v1/counts")
        request.headers.add(
            name: "Authorization", value: "Basic " + Data("e2e@example.com:\(site.token)".utf8).base64EncodedString())
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 1 << 20)
        return try JSONDecoder().decode(SiteCounts.self, from: Data(buffer: body))
    }

    /// Arms the local site's fault injection (`POST /_local/v1/faults`).
    static func armSiteFaults(_ site: LocalSite, failures: Int, status: Int) async throws {
        var request = HTTPClientRequest(url: site.url + "/_local/v1/faults?failures=\(failures)&status=\(status)")
        request.method = .POST
        request.headers.add(
            name: "Authorization", value: "Basic " + Data("e2e@example.com:\(site.token)".utf8).base64EncodedString())
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        _ = try await response.body.collect(upTo: 1 << 20)
        guard response.status == .accepted else {
            throw HarnessFailure("the site did not arm faults: \(response.status)")
        }
    }

    /// Requests the site's Atlassian endpoints received so far.
    static func siteRequests(_ site: LocalSite) async throws -> Int { try await siteCounts(site).apiRequests }

    /// Every in-scope user key of a migration, batched or settled by the cut.
    static func scopeKeys(_ ledger: Ledger, _ migrationId: String) async throws -> [String] {
        try await ledger.scopeEntries(migrationId: migrationId, limit: 1_000_000).map(\.userKey)
    }

    /// Every identity of a migration's batches in the ledger (the whole scope unless the cut
    /// settled some: see ``scopeKeys(_:_:)``).
    static func scope(_ ledger: Ledger, _ migrationId: String) async throws -> [ServerIdentity] {
        var identities: [ServerIdentity] = []
        for batch in try await ledger.batches(migrationId: migrationId, limit: 100_000) {
            identities += try await ledger.loadIdentityBatch(migrationId: migrationId, batchId: batch.batchId)
                .identities
        }
        return identities
    }

    /// Every mapping row of a site.
    static func mappings(_ ledger: Ledger, siteId: String) async throws -> [String: MappingRecord] {
        var rows: [String: MappingRecord] = [:]
        var after: String?
        for _ in 0..<10_000 {
            let page = try await ledger.mappings(siteId: siteId, afterUserKey: after, limit: 1000)
            guard let last = page.last else { break }
            for row in page { rows[row.userKey] = row }
            after = last.userKey
        }
        return rows
    }
}

/// A harness failure, naming what was wrong.
extension EndToEnd {
    /// What a `jsm-migrate` run printed and how it ended.
    struct CommandResult: Sendable {
        let status: Int32
        let output: String
        let error: String
    }

    /// Runs the built `jsm-migrate` with `arguments` (at most `limit`), capturing both streams.
    static func runCommand(
        _ arguments: [String], environment: [String: String], limit: Duration = .seconds(60),
        whileRunning: ((Process) async throws -> Void)? = nil
    ) async throws -> CommandResult {
        try await runProcess(executable, arguments, environment: environment, limit: limit, whileRunning: whileRunning)
    }

    /// Runs a program (at most `limit`, then SIGTERM), capturing both streams; `whileRunning` is
    /// called once the process has started (to signal it, say) and must itself be bounded.
    static func runProcess(
        _ program: URL, _ arguments: [String], environment: [String: String] = [:], limit: Duration = .seconds(60),
        whileRunning: ((Process) async throws -> Void)? = nil
    ) async throws -> CommandResult {
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        process.environment = self.environment.merging(environment) { _, new in new }
        let folder = FileManager.default.temporaryDirectory
        let outputFile = folder.appendingPathComponent("cmd-out-\(UUID().uuidString)")
        let errorFile = folder.appendingPathComponent("cmd-err-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)
        defer {
            try? FileManager.default.removeItem(at: outputFile)
            try? FileManager.default.removeItem(at: errorFile)
        }
        let output = try FileHandle(forWritingTo: outputFile)
        let error = try FileHandle(forWritingTo: errorFile)
        process.standardOutput = output
        process.standardError = error
        try process.run()
        do {
            try await whileRunning?(process)
        } catch {
            process.terminate()
            process.waitUntilExit()
            throw error
        }
        let deadline = ContinuousClock.now + limit
        while process.isRunning, ContinuousClock.now < deadline { try await Task.sleep(for: .milliseconds(50)) }
        if process.isRunning { process.terminate() }
        process.waitUntilExit()
        try output.close()
        try error.close()
        return CommandResult(
            status: process.terminationStatus, output: try String(contentsOf: outputFile, encoding: .utf8),
            error: try String(contentsOf: errorFile, encoding: .utf8))
    }
}

extension EndToEnd {
    /// `rabbitmqctl list_queues` of the vhost in `environment`'s AMQP_URL: ready and consumers by name.
    static func listQueues(environment: [String: String]) async throws -> [String: (ready: Int, consumers: Int)] {
        guard let url = environment["AMQP_URL"].flatMap(URLComponents.init(string:)),
            let vhost = url.path.dropFirst().removingPercentEncoding
        else { throw HarnessFailure("no vhost in AMQP_URL") }
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let result = try await runProcess(
            root.appendingPathComponent("scripts/services.sh"),
            [
                "rabbitmqctl", "list_queues", "-p", vhost, "name", "messages_ready", "consumers", "-q",
                "--no-table-headers",
            ])
        guard result.status == 0 else { throw HarnessFailure("rabbitmqctl list_queues failed: \(result.error)") }
        var queues: [String: (ready: Int, consumers: Int)] = [:]
        for line in result.output.split(separator: "\n") {
            let fields = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
            guard fields.count == 3, let ready = Int(fields[1]), let consumers = Int(fields[2]) else { continue }
            queues[String(fields[0])] = (ready, consumers)
        }
        return queues
    }
}

struct HarnessFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

extension EndToEnd {
    /// A TCP port on 127.0.0.1 that nothing listens on right now (bound to port 0, then released).
    static func freeLoopbackPort() throws -> Int {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard descriptor >= 0 else { throw HarnessFailure("socket() failed") }
        defer { close(descriptor) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0 else { throw HarnessFailure("bind() failed") }
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let named = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &length) }
        }
        guard named == 0 else { throw HarnessFailure("getsockname() failed") }
        return Int(UInt16(bigEndian: address.sin_port))
    }
}

/// One page of the local site's `/_local/v1/accounts` listing.
private struct SiteAccountPage<Account: Decodable>: Decodable {
    let accounts: [Account]
    let nextCursor: String?
}

extension LocalWorld {
    /// A migration without projects of every user and customer (`--users all --customers all
    /// --include-requestless`): the producer claims the whole scope and cuts it itself.
    func wholeScopeRequest(_ migrationId: String, batchSize: Int) -> StartRequest {
        request(
            migrationId, projects: [], scope: ScopeOptions(customers: .all, includeRequestless: true, users: .all),
            batchSize: batchSize)
    }
}
