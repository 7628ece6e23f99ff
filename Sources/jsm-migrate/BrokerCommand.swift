import AMQP
import ArgumentParser
import JSMServices

/// Broker chores: declare the migration topology, look at its queues.
struct BrokerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "broker",
        abstract: "Declare the migration's exchanges and queues, or show their depth.",
        subcommands: [Declare.self, Queues.self])

    struct Declare: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Declare the exchanges, queues and bindings of proto-docs/README.md (idempotent).")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var broker: BrokerOptions

        @Option(help: "Redeliveries of one message before the broker parks it.")
        var deliveryLimit = 5

        func run() async throws {
            global.bootstrapLogging()
            let declarations = MigrationBrokerTopology(deliveryLimit: deliveryLimit).declarations
            let broker = try await broker.withConnection(named: "jsm-migrate broker declare") { connection in
                try await connection.declare(declarations)
                return connection.configuration.redactedURL
            }
            print(
                "declared \(declarations.exchanges.count) exchanges, \(declarations.queues.count) queues, "
                    + "\(declarations.bindings.count) bindings on \(broker)")
        }
    }

    struct Queues: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Ready messages and consumers of every migration queue (by passive declare).")

        @OptionGroup var global: GlobalOptions
        @OptionGroup var broker: BrokerOptions

        func run() async throws {
            global.bootstrapLogging()
            let names = MigrationBrokerTopology().queueNames
            let counts = try await broker.withConnection(named: "jsm-migrate broker queues") { connection in
                var counts: [QueueCounts] = []
                for name in names { counts.append(try await connection.queueCounts(name)) }
                return counts
            }
            let width = names.map(\.count).max() ?? 10
            print("queue".padding(toLength: width, withPad: " ", startingAt: 0) + "     ready  consumers")
            for (name, count) in zip(names, counts) {
                print(
                    name.padding(toLength: width, withPad: " ", startingAt: 0)
                        + String(count.ready).leftPadded(10) + String(count.consumers).leftPadded(11))
            }
        }
    }
}

extension String {
    /// Right-aligns the string in a column of `width` characters.
    func leftPadded(_ width: Int) -> String {
        count >= width ? self : String(repeating: " ", count: width - count) + self
    }
}
