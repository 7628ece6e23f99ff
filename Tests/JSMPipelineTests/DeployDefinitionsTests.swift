import AMQP
import AsyncHTTPClient
import Foundation
import JSMContracts
import JSMLocalRun
import JSMServices
import Logging
import NIOCore
import NIOHTTP1
import Testing

/// deploy/rabbitmq/definitions.json, rendered and imported the way deploy/README.md tells operators to,
/// must hold exactly the topology the programs declare (a differing argument is a 406
/// PRECONDITION_FAILED at every component's start-up) and give each role the rights the README's
/// least-privilege table lists: enough to run, nothing more.
///
/// The broker tests work in a vhost and users of their own (the definitions' vhost and user names are
/// rewritten by `render-definitions.sh --vhost --user-suffix`), deleted through the management API at
/// the end, so runs never collide. They fail, never skip, when the broker is missing.
@Suite("deploy/rabbitmq definitions")
struct DeployDefinitionsTests {
    @Test("the committed definitions hold no password and exactly the topology the code declares")
    func committedDefinitionsMatchTheCode() throws {
        let definitions = try DeployFiles.committedDefinitions()
        #expect(Set(definitions.users.map(\.name)) == Set(DeployRole.allCases.map(\.rawValue)))
        for user in definitions.users {
            #expect(user.passwordHash.isEmpty, "user \(user.name) carries a password hash in the committed file")
        }
        #expect(definitions.vhosts.map(\.name) == [DeployFiles.vhost])
        let vhosts = Set(
            definitions.permissions.map(\.vhost) + definitions.queues.map(\.vhost) + definitions.exchanges.map(\.vhost)
                + definitions.bindings.map(\.vhost))
        #expect(vhosts == [DeployFiles.vhost])
        #expect(Set(definitions.permissions.map(\.user)) == Set(DeployRole.allCases.map(\.rawValue)))

        let expected = try DeployExpectedTopology(MigrationBrokerTopology().declarations)
        #expect(definitions.queues.count == expected.queues.count)
        #expect(deployByName(definitions.queues.map { ($0.name, $0.arguments) }) == expected.queues)
        for queue in definitions.queues {
            #expect(queue.durable && !queue.autoDelete, "queue \(queue.name) must be durable, not auto-delete")
        }
        #expect(definitions.exchanges.count == expected.exchanges.count)
        #expect(deployByName(definitions.exchanges.map { ($0.name, $0.type) }) == expected.exchanges)
        for exchange in definitions.exchanges {
            #expect(
                exchange.durable && !exchange.autoDelete && !exchange.internal && exchange.arguments.isEmpty,
                "exchange \(exchange.name) must be durable, public, not auto-delete and without arguments")
        }
        #expect(Set(definitions.bindings.map(\.key)) == expected.bindings)
        #expect(definitions.bindings.count == expected.bindings.count)
    }

    @Test("render-definitions.sh refuses a missing password, names the user and prints no password")
    func renderingRefusesAMissingPassword() async throws {
        let folder = try DeployFiles.privateTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let passwords = try DeployFiles.writePasswords(
            in: folder, roles: DeployRole.allCases.filter { $0 != .monitoring })
        let output = folder.appendingPathComponent("rendered.json")

        let refused = try await DeployCommand.run(
            DeployFiles.renderScript, ["--output", output.path, "--password-dir", folder.path])
        #expect(refused.status != 0)
        #expect(refused.errors.contains("jsm-monitoring"))
        #expect(!FileManager.default.fileExists(atPath: output.path))

        let monitoringPassword = DeployFiles.randomPassword()
        let rendered = try await DeployCommand.run(
            DeployFiles.renderScript, ["--output", output.path],
            environment: ["JSM_RABBITMQ_PASSWORD_MONITORING": monitoringPassword]
                .merging(
                    passwords.map { ("JSM_RABBITMQ_PASSWORD_" + $0.key.envSuffix, $0.value) }, uniquingKeysWith: { $1 })
        )
        #expect(rendered.status == 0, "render-definitions.sh failed: \(rendered.errors)")
        let file = try String(contentsOf: output, encoding: .utf8)
        for password in Array(passwords.values) + [monitoringPassword] {
            #expect(!refused.output.contains(password) && !refused.errors.contains(password))
            #expect(!rendered.output.contains(password) && !rendered.errors.contains(password))
            #expect(!file.contains(password), "the rendered file holds a password in clear")
        }
        let attributes = try FileManager.default.attributesOfItem(atPath: output.path)
        #expect((attributes[.posixPermissions] as? NSNumber)?.intValue == 0o600)
        let users = try JSONDecoder.deploy.decode(DeployDefinitions.self, from: Data(file.utf8)).users
        #expect(
            users.allSatisfy { !$0.passwordHash.isEmpty && $0.hashingAlgorithm == "rabbit_password_hashing_sha256" })
    }

    @Test(
        "imported definitions are the code's topology: the producer re-declares it without a 406, worker and aggregator find it"
    )
    func importedTopologyMatchesTheCode() async throws {
        let topology = MigrationBrokerTopology().declarations
        let expected = try DeployExpectedTopology(topology)
        try await DeployImport.with { deployment in
            // Read the broker before any program declares anything, so the import alone is judged.
            try await deployment.expectState(expected)

            #expect(
                try await deployment.refusal(of: .declareTopology, as: .producer) == nil,
                "the producer could not declare the topology over the imported definitions")
            // Workers and the aggregator run with --topology check (deploy/): passive declares only.
            for role in [DeployRole.worker, .aggregator] {
                #expect(
                    try await deployment.refusal(of: .checkTopology, as: role) == nil,
                    "\(role.rawValue) could not check the topology over the imported definitions")
            }
            try await deployment.expectState(expected)

            // The check above can fail: one argument off is refused with 406 PRECONDITION_FAILED.
            let different = MigrationBrokerTopology(deliveryLimit: 6).declarations
            #expect(try await deployment.refusal(of: .declare(different), as: .producer) == 406)
        }
    }

    @Test("each role may do what the README's table lists and is refused the rest")
    func rolesHaveLeastPrivilege() async throws {
        let work = RPCMethod.migrateIdentities
        let retry = try #require(RetryTier.standard.first).queueName
        let results = MigrationTopology.resultsQueue
        let parked = MigrationTopology.parkedQueue
        let toWork = DeployProbe.publish(exchange: MigrationTopology.workExchange, routingKey: work.routingKey)
        let toDefault = DeployProbe.publish(exchange: MigrationTopology.defaultExchange, routingKey: work.queueName)
        let toParked = DeployProbe.publish(exchange: MigrationTopology.parkedExchange, routingKey: work.routingKey)
        let reply = DeployProbe.publish(exchange: MigrationTopology.defaultExchange, routingKey: results)
        let toRetry = DeployProbe.publish(exchange: MigrationTopology.retryExchange, routingKey: retry)
        let probes: [(DeployRole, DeployProbe, allowed: Bool)] = [
            (.producer, toWork, true),
            (.producer, .consume(work.queueName), false),
            (.producer, .consume(results), false),
            (.producer, toDefault, false),
            (.producer, .declareQueue("jsm.rogue"), false),
            (.worker, .consume(RPCMethod.expandProject.queueName), true),
            (.worker, .consume(work.queueName), true),
            (.worker, reply, true),
            (.worker, toRetry, true),
            (.worker, toParked, true),
            (.worker, toWork, false),
            (.worker, .consume(results), false),
            (.worker, .consume(parked), false),
            (.worker, .consume(retry), false),
            (.worker, .checkTopology, true),
            (.worker, .declareTopology, false),
            (.worker, .declareQueue("jsm.rogue"), false),
            (.aggregator, .consume(results), true),
            (.aggregator, toWork, true),
            (.aggregator, toParked, true),
            (.aggregator, .consume(work.queueName), false),
            (.aggregator, .consume(parked), false),
            (.aggregator, toDefault, false),
            (.aggregator, toRetry, false),
            (.aggregator, .checkTopology, true),
            (.aggregator, .declareTopology, false),
            (.aggregator, .declareQueue("jsm.rogue"), false),
            (.monitoring, .queueCounts(work.queueName), true),
            (.monitoring, .declareTopology, false),
            (.monitoring, .consume(parked), false),
            (.monitoring, .consume(work.queueName), false),
            (.monitoring, toDefault, false),
            (.monitoring, toParked, false),
        ]
        try await DeployImport.with { deployment in
            for (role, probe, allowed) in probes {
                let refusal = try await deployment.refusal(of: probe, as: role)
                if allowed {
                    #expect(
                        refusal == nil, "\(role.rawValue) must be allowed to \(probe) (refused with \(refusal ?? 0))")
                } else {
                    #expect(refusal == 403, "\(role.rawValue) must be refused to \(probe) with 403")
                }
            }

            // The management API: monitoring reads queue depths (KEDA, dashboards); the programs' users
            // have no tag and cannot log in to it at all.
            let queuePath = "/api/queues/\(deployment.vhost)/\(work.queueName)"
            #expect(try await deployment.management(as: .monitoring).status(.GET, queuePath) == 200)
            let tags = try await deployment.admin.get(
                "/api/users/\(deployment.user(.monitoring))", as: DeployUserTags.self)
            #expect(tags.tags == ["monitoring"])
            for role in [DeployRole.producer, .worker, .aggregator] {
                #expect(try await deployment.management(as: role).status(.GET, queuePath) == 401)
            }
        }
    }
}

extension DeployDefinitionsTests {
    @Test("worker processes migrate as jsm-worker with --topology check over the imported definitions")
    func workersRunUnderTheirRole() async throws {
        try await DeployImport.with { deployment in
            // The producer and the aggregator run in the test process as the admin user.
            try await deployment.grantAdmin()
            var configuration = LocalWorld.Configuration(
                directory: FileManager.default.temporaryDirectory.appendingPathComponent(deployment.vhost).path,
                users: 400, seed: 13, workers: 2, workerConcurrency: 2, executable: EndToEnd.executable,
                environment: EndToEnd.environment.merging(["AMQP_URL": try deployment.url(as: .worker)]) { _, new in
                    new
                })
            configuration.workerArguments = ["--log-level", "warning", "--topology", "check"]
            let directory = configuration.directory
            defer { try? FileManager.default.removeItem(atPath: directory) }
            var admin = deployment.broker
            admin.virtualHost = deployment.vhost
            let verdict = try await LocalWorld.run(configuration, logger: EndToEnd.logger) { world in
                let connection = try await AMQPConnection.connect(admin, logger: EndToEnd.logger)
                do {
                    let projects = try await world.source.withSource { try await $0.projects().map(\.key) }
                    let verdict = try await world.migrate(
                        world.request("deploy", projects: projects, batchSize: 60), connection: connection,
                        timeout: .seconds(240)
                    ).verdict
                    await connection.close()
                    return verdict
                } catch {
                    await connection.close()
                    throw error
                }
            }
            #expect(verdict.reconciled && verdict.repliesMatchLedger)
            #expect(verdict.tally.batches.count == verdict.batchStates[.done, default: 0])
        }
    }
}

// MARK: The four roles and what the tests try as each

/// The users of deploy/rabbitmq/definitions.json, one per component.
enum DeployRole: String, CaseIterable, Sendable {
    case producer = "jsm-producer"
    case worker = "jsm-worker"
    case aggregator = "jsm-aggregator"
    case monitoring = "jsm-monitoring"

    /// The suffix of the role's password variable for render-definitions.sh (`JSM_RABBITMQ_PASSWORD_WORKER`).
    var envSuffix: String { String(rawValue.dropFirst("jsm-".count)).uppercased() }
}

/// One broker operation a component performs (or must not be able to perform).
enum DeployProbe: CustomStringConvertible, Sendable {
    case declareTopology
    case checkTopology
    case declare(AMQPTopology)
    case declareQueue(String)
    case consume(String)
    case publish(exchange: String, routingKey: String)
    case queueCounts(String)

    var description: String {
        switch self {
        case .declareTopology: "declare the migration topology"
        case .checkTopology: "check the migration topology by passive declares"
        case .declare: "declare a topology"
        case .declareQueue(let name): "declare queue \(name)"
        case .consume(let queue): "consume from \(queue)"
        case .publish(let exchange, let key): "publish to exchange '\(exchange)' with key '\(key)'"
        case .queueCounts(let queue): "read the depth of \(queue) by passive declare"
        }
    }
}

// MARK: Files of deploy/

/// The paths of deploy/ and scripts/ in this checkout, and small file chores.
enum DeployFiles {
    /// The vhost the committed definitions use.
    static let vhost = "jsm"

    /// The repository root: this file is Tests/JSMPipelineTests/DeployDefinitionsTests.swift.
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let definitions = root.appendingPathComponent("deploy/rabbitmq/definitions.json")
    static let renderScript = root.appendingPathComponent("deploy/rabbitmq/render-definitions.sh")
    static let servicesScript = root.appendingPathComponent("scripts/services.sh")

    static func committedDefinitions() throws -> DeployDefinitions {
        try JSONDecoder.deploy.decode(DeployDefinitions.self, from: Data(contentsOf: definitions))
    }

    /// A fresh folder only this user can enter, for passwords and rendered definitions.
    static func privateTemporaryFolder() throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent(
            "jsm-deploy-\(UInt64.random(in: 0...UInt64.max))")
        try FileManager.default.createDirectory(
            at: folder, withIntermediateDirectories: false, attributes: [.posixPermissions: 0o700])
        return folder
    }

    /// 32 hex digits: safe in a file, a variable and a URL without escaping.
    static func randomPassword() -> String {
        (0..<2).map { _ in String(UInt64.random(in: 0...UInt64.max), radix: 16) }.joined(separator: "x")
    }

    /// Writes one password file per role (the layout of `--password-dir`) and returns the passwords.
    static func writePasswords(in folder: URL, roles: [DeployRole]) throws -> [DeployRole: String] {
        var passwords: [DeployRole: String] = [:]
        for role in roles {
            let password = randomPassword()
            let file = folder.appendingPathComponent(role.rawValue)
            try Data((password + "\n").utf8).write(to: file)
            try FileManager.default.setAttributes([.posixPermissions: 0o600], ofItemAtPath: file.path)
            passwords[role] = password
        }
        return passwords
    }
}

// MARK: The topology, as the broker and the definitions spell it

/// A queue argument as JSON carries it: the code's AMQP integers and strings.
enum DeployArgument: Decodable, Hashable, Sendable {
    case integer(Int64)
    case text(String)

    init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let integer = try? container.decode(Int64.self) {
            self = .integer(integer)
        } else {
            self = .text(try container.decode(String.self))
        }
    }

    init(_ value: AMQPFieldValue) throws {
        if case .string(let text) = value {
            self = .text(text)
        } else if let integer = value.intValue {
            self = .integer(integer)
        } else {
            throw DeployTestFailure("the topology declares an argument the definitions cannot hold: \(value)")
        }
    }
}

/// The names, types and arguments of `MigrationBrokerTopology().declarations`.
struct DeployExpectedTopology: Sendable {
    var queues: [String: [String: DeployArgument]] = [:]
    var exchanges: [String: String] = [:]
    var bindings: Set<DeployBindingKey> = []

    init(_ topology: AMQPTopology) throws {
        for queue in topology.queues {
            queues[queue.name] = try queue.arguments.mapValues(DeployArgument.init)
        }
        for exchange in topology.exchanges { exchanges[exchange.name] = exchange.kind.rawValue }
        bindings = Set(
            topology.bindings.map {
                DeployBindingKey(exchange: $0.exchange, queue: $0.queue, routingKey: $0.routingKey)
            })
    }
}

/// A binding, compared by what routes where.
struct DeployBindingKey: Hashable, Sendable, CustomStringConvertible {
    let exchange: String
    let queue: String
    let routingKey: String
    var description: String { "\(exchange) -> \(queue) (key '\(routingKey)')" }
}

/// The parts of a definitions file (and of the management API's answers) the tests read.
struct DeployDefinitions: Decodable {
    struct User: Decodable {
        let name: String
        let passwordHash: String
        let hashingAlgorithm: String
    }
    struct Vhost: Decodable { let name: String }
    struct Permission: Decodable {
        let user: String
        let vhost: String
    }
    struct Queue: Decodable {
        let name: String
        let vhost: String
        let durable: Bool
        let autoDelete: Bool
        let arguments: [String: DeployArgument]
    }
    struct Exchange: Decodable {
        let name: String
        let vhost: String
        let type: String
        let durable: Bool
        let autoDelete: Bool
        let `internal`: Bool
        let arguments: [String: DeployArgument]
    }
    struct Binding: Decodable {
        let source: String
        let vhost: String
        let destination: String
        let destinationType: String
        let routingKey: String
        var key: DeployBindingKey { DeployBindingKey(exchange: source, queue: destination, routingKey: routingKey) }
    }

    let users: [User]
    let vhosts: [Vhost]
    let permissions: [Permission]
    let queues: [Queue]
    let exchanges: [Exchange]
    let bindings: [Binding]
}

/// `GET /api/users/NAME`: the user's tags.
struct DeployUserTags: Decodable { let tags: [String] }

/// `GET /api/queues/VHOST`: what the tests compare of each queue.
struct DeployManagedQueue: Decodable {
    let name: String
    let type: String
    let durable: Bool
    let autoDelete: Bool
    let arguments: [String: DeployArgument]
}

extension JSONDecoder {
    /// Reads RabbitMQ's snake_case keys.
    static var deploy: JSONDecoder {
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return decoder
    }
}

/// Pairs keyed by name; a name listed twice keeps its first value (the callers also compare counts).
func deployByName<Value>(_ pairs: [(String, Value)]) -> [String: Value] {
    Dictionary(pairs, uniquingKeysWith: { first, _ in first })
}

/// What went wrong in the test's own set-up, named.
struct DeployTestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

// MARK: A deployment imported into the test broker

/// The definitions rendered with a vhost and user names of this run, imported with `rabbitmqctl
/// import_definitions`, and removed again (vhost and users) through the management API.
struct DeployImport: Sendable {
    let vhost: String
    let userSuffix: String
    let passwords: [DeployRole: String]
    let admin: DeployManagement
    let broker: AMQPConfiguration

    static func with(_ body: (DeployImport) async throws -> Void) async throws {
        let environment = ProcessInfo.processInfo.environment
        guard let amqpURL = environment["AMQP_URL"], let managementURL = environment["JSM_RABBITMQ_MGMT_URL"],
            let adminUser = environment["AMQP_USER"], let adminPassword = environment["AMQP_PASSWORD"]
        else {
            throw DeployTestFailure(
                "AMQP_URL, AMQP_USER, AMQP_PASSWORD and JSM_RABBITMQ_MGMT_URL must be set: "
                    + "eval \"$(scripts/services.sh env)\"")
        }
        let run = String(UInt32.random(in: 0...UInt32.max), radix: 16)
        let folder = try DeployFiles.privateTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let deployment = DeployImport(
            vhost: "jsm-deploy-\(run)", userSuffix: "-deploy-\(run)",
            passwords: try DeployFiles.writePasswords(in: folder, roles: DeployRole.allCases),
            admin: DeployManagement(baseURL: managementURL, user: adminUser, password: adminPassword),
            broker: try AMQPConfiguration(url: amqpURL))
        // Before anything is imported: without the management API nothing could be removed again.
        let overview = try await deployment.admin.status(.GET, "/api/overview", timeout: .seconds(5))
        guard overview == 200 else {
            throw DeployTestFailure(
                "RabbitMQ management API at \(managementURL) answered \(overview) to the admin user")
        }
        do {
            try await deployment.importDefinitions(passwordFolder: folder)
            try await body(deployment)
        } catch {
            try? await deployment.remove()
            throw error
        }
        try await deployment.remove()
    }

    /// Renders into the private folder and pipes the result into `rabbitmqctl import_definitions`.
    private func importDefinitions(passwordFolder folder: URL) async throws {
        let rendered = folder.appendingPathComponent("definitions.json")
        let render = try await DeployCommand.run(
            DeployFiles.renderScript,
            [
                "--output", rendered.path, "--password-dir", folder.path, "--vhost", vhost, "--user-suffix",
                userSuffix,
            ])
        guard render.status == 0 else { throw DeployTestFailure("render-definitions.sh failed: \(render.errors)") }
        let imported = try await DeployCommand.run(
            DeployFiles.servicesScript, ["rabbitmqctl", "import_definitions", "--format", "json"], input: rendered)
        guard imported.status == 0 else {
            throw DeployTestFailure("rabbitmqctl import_definitions failed: \(imported.errors) \(imported.output)")
        }
        // The import runs asynchronously on the node; bindings come last. Wait (bounded) for them.
        let expected = try DeployFiles.committedDefinitions().bindings.count
        for _ in 0..<150 {
            // 404 until the vhost exists; transport errors are real failures and propagate.
            if try await admin.status(.GET, "/api/vhosts/\(vhost)") == 200 {
                let bindings = try await admin.get("/api/bindings/\(vhost)", as: [DeployDefinitions.Binding].self)
                if bindings.filter({ !$0.source.isEmpty }).count >= expected { return }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        throw DeployTestFailure("the import into vhost \(vhost) did not finish within 30 s")
    }

    /// Deletes the vhost (and with it every queue and permission) and the run's users.
    private func remove() async throws {
        try await admin.delete("/api/vhosts/\(vhost)")
        for role in DeployRole.allCases { try await admin.delete("/api/users/\(user(role))") }
    }

    func user(_ role: DeployRole) -> String { role.rawValue + userSuffix }

    /// The role's AMQP URL for the vhost, password included (a test process's environment only).
    func url(as role: DeployRole) throws -> String {
        var components = URLComponents()
        components.scheme = broker.tls == nil ? "amqp" : "amqps"
        components.host = broker.host
        components.port = broker.port
        components.user = user(role)
        components.password = passwords[role]
        components.percentEncodedPath = "/" + vhost
        guard let url = components.string else { throw DeployTestFailure("cannot build the URL of \(role)") }
        return url
    }

    /// Full rights on the vhost for the admin user, who runs the in-process producer and aggregator.
    func grantAdmin() async throws {
        var request = HTTPClientRequest(url: "\(admin.baseURL)/api/permissions/\(vhost)/\(admin.user)")
        request.method = .PUT
        request.headers.add(
            name: "Authorization",
            value: "Basic " + Data("\(admin.user):\(admin.password)".utf8).base64EncodedString())
        request.headers.add(name: "Content-Type", value: "application/json")
        request.body = .bytes(ByteBuffer(string: #"{"configure":".*","write":".*","read":".*"}"#))
        let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
        guard (200..<300).contains(Int(response.status.code)) else {
            throw DeployTestFailure("granting the admin user vhost \(vhost) answered \(response.status.code)")
        }
    }

    /// The role's management API client.
    func management(as role: DeployRole) -> DeployManagement {
        DeployManagement(baseURL: admin.baseURL, user: user(role), password: passwords[role] ?? "")
    }

    /// Expects the vhost to hold exactly the expected queues, exchanges and bindings, with their arguments.
    func expectState(_ expected: DeployExpectedTopology) async throws {
        let queues = try await admin.get("/api/queues/\(vhost)", as: [DeployManagedQueue].self)
        #expect(queues.count == expected.queues.count)
        #expect(deployByName(queues.map { ($0.name, $0.arguments) }) == expected.queues)
        for queue in queues {
            #expect(queue.type == "quorum" && queue.durable && !queue.autoDelete, "queue \(queue.name): \(queue)")
        }
        let exchanges = try await admin.get("/api/exchanges/\(vhost)", as: [DeployDefinitions.Exchange].self)
            .filter { !$0.name.isEmpty && !$0.name.hasPrefix("amq.") }
        #expect(exchanges.count == expected.exchanges.count)
        #expect(deployByName(exchanges.map { ($0.name, $0.type) }) == expected.exchanges)
        for exchange in exchanges {
            #expect(exchange.durable && !exchange.autoDelete && !exchange.internal && exchange.arguments.isEmpty)
        }
        let bindings = try await admin.get("/api/bindings/\(vhost)", as: [DeployDefinitions.Binding].self)
            .filter { !$0.source.isEmpty }
        #expect(bindings.allSatisfy { $0.destinationType == "queue" })
        #expect(Set(bindings.map(\.key)) == expected.bindings)
        #expect(bindings.count == expected.bindings.count)
    }

    /// Performs `probe` as `role` on a connection of its own: `nil` when the broker allowed it, else
    /// the reply code it closed the channel with (403 ACCESS_REFUSED, 406 PRECONDITION_FAILED, ...).
    func refusal(of probe: DeployProbe, as role: DeployRole) async throws -> UInt16? {
        var configuration = broker
        configuration.virtualHost = vhost
        configuration.user = user(role)
        configuration.password = passwords[role] ?? ""
        configuration.reconnectGiveUpAfter = nil
        configuration.connectionName = "jsm deploy test \(role.rawValue)"
        var logger = Logger(label: "jsm.deploy-test")
        logger.logLevel = .critical
        let connection = try await AMQPConnection.connect(configuration, logger: logger)
        do {
            switch probe {
            case .declareTopology:
                try await connection.declare(MigrationBrokerTopology().declarations)
            case .checkTopology:
                try await connection.check(MigrationBrokerTopology().declarations)
            case .declare(let topology):
                try await connection.declare(topology)
            case .declareQueue(let name):
                try await connection.declare(AMQPTopology(queues: [QueueSpec(name: name)]))
            case .consume(let queue):
                let consumer = try await connection.consume(queue: queue, prefetch: 1)
                consumer.cancel()
            case .publish(let exchange, let routingKey):
                try await connection.publish(
                    OutboundMessage(
                        exchange: exchange, routingKey: routingKey, body: Array("probe".utf8), mandatory: false))
            case .queueCounts(let queue):
                _ = try await connection.queueCounts(queue)
            }
        } catch let error where error.code == .channelClosed {
            await connection.close()
            return error.replyCode ?? 0
        } catch {
            await connection.close()
            throw error
        }
        await connection.close()
        return nil
    }
}

/// The RabbitMQ management HTTP API as one user. (EndToEndHarness's helper is private and returns no
/// body, so this file has its own.)
struct DeployManagement: Sendable {
    let baseURL: String
    let user: String
    let password: String

    private func send(
        _ method: HTTPMethod, _ path: String, timeout: TimeAmount = .seconds(30)
    ) async throws -> (status: UInt, body: ByteBuffer) {
        var request = HTTPClientRequest(url: baseURL + path)
        request.method = method
        request.headers.add(
            name: "Authorization", value: "Basic " + Data("\(user):\(password)".utf8).base64EncodedString())
        let response = try await HTTPClient.shared.execute(request, timeout: timeout)
        return (response.status.code, try await response.body.collect(upTo: 16 << 20))
    }

    /// The answer's status code.
    func status(_ method: HTTPMethod, _ path: String, timeout: TimeAmount = .seconds(30)) async throws -> UInt {
        try await send(method, path, timeout: timeout).status
    }

    /// The answer decoded; any status but 200 is an error.
    func get<T: Decodable>(_ path: String, as type: T.Type) async throws -> T {
        let (status, body) = try await send(.GET, path)
        guard status == 200 else { throw DeployTestFailure("RabbitMQ management GET \(path) answered \(status)") }
        return try JSONDecoder.deploy.decode(type, from: Data(body.readableBytesView))
    }

    /// Deletes; a resource already gone is fine.
    func delete(_ path: String) async throws {
        let status = try await send(.DELETE, path).status
        guard (200..<300).contains(status) || status == 404 else {
            throw DeployTestFailure("RabbitMQ management DELETE \(path) answered \(status)")
        }
    }
}

// MARK: Running the deploy scripts

/// A finished command: exit status and what it printed.
struct DeployCommandResult: Sendable {
    let status: Int32
    let output: String
    let errors: String
}

enum DeployCommand {
    /// Runs a bash script with bounded waiting; output goes through files, so a chatty command cannot block.
    static func run(
        _ script: URL, _ arguments: [String], input: URL? = nil, environment: [String: String] = [:],
        timeout: Duration = .seconds(120)
    ) async throws -> DeployCommandResult {
        let folder = try DeployFiles.privateTemporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let outputFile = folder.appendingPathComponent("stdout")
        let errorFile = folder.appendingPathComponent("stderr")
        _ = FileManager.default.createFile(atPath: outputFile.path, contents: nil)
        _ = FileManager.default.createFile(atPath: errorFile.path, contents: nil)

        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [script.path] + arguments
        process.environment = ProcessInfo.processInfo.environment.merging(environment) { _, new in new }
        process.standardInput = try input.map { try FileHandle(forReadingFrom: $0) } ?? FileHandle.nullDevice
        process.standardOutput = try FileHandle(forWritingTo: outputFile)
        process.standardError = try FileHandle(forWritingTo: errorFile)
        try process.run()
        let polls = Int(timeout / .milliseconds(100))
        for _ in 0..<polls {
            guard process.isRunning else { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        if process.isRunning {
            process.terminate()
            throw DeployTestFailure("\(script.lastPathComponent) \(arguments.first ?? "") did not finish in \(timeout)")
        }
        process.waitUntilExit()
        return DeployCommandResult(
            status: process.terminationStatus,
            output: try String(contentsOf: outputFile, encoding: .utf8),
            errors: try String(contentsOf: errorFile, encoding: .utf8))
    }
}
