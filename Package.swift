// swift-tools-version: 6.2
import PackageDescription

/// Our own targets treat every warning as an error; dependencies are built as their authors ship them.
let strict: [SwiftSetting] = [.treatAllWarnings(as: .error)]

let package = Package(
    name: "jsm-migrate",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "jsm-migrate", targets: ["jsm-migrate"]),
        .executable(name: "amqp-benchmark", targets: ["AMQPBenchmark"]),
        .library(name: "AMQP", targets: ["AMQP"]),
        .library(name: "JSMDomain", targets: ["JSMDomain"]),
        .library(name: "JSMContracts", targets: ["JSMContracts"]),
        .executable(name: "source-benchmark", targets: ["SourceBenchmark"]),
        .library(name: "JSMSource", targets: ["JSMSource"]),
        .library(name: "JSMSourceFixtures", targets: ["JSMSourceFixtures"]),
        .executable(name: "site-benchmark", targets: ["SiteBenchmark"]),
        .library(name: "JSMCloud", targets: ["JSMCloud"]),
        .library(name: "JSMCloudSite", targets: ["JSMCloudSite"]),
        .library(name: "JSMLedger", targets: ["JSMLedger"]),
        .executable(name: "ledger-benchmark", targets: ["LedgerBenchmark"]),
        .executable(name: "pipeline-benchmark", targets: ["PipelineBenchmark"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
        .package(url: "https://github.com/vapor/sqlite-nio", from: "1.13.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        // librabbitmq (rabbitmq-c 0.11, Debian librabbitmq-dev) as a system library.
        .systemLibrary(
            name: "CRabbitMQ",
            pkgConfig: "librabbitmq",
            providers: [.apt(["librabbitmq-dev"])]
        ),
        // The Swift AMQP 0-9-1 client over librabbitmq: one thread per connection.
        .target(
            name: "AMQP",
            dependencies: [
                "CRabbitMQ",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The migration rules: pure, no I/O.
        .target(name: "JSMDomain", swiftSettings: strict),
        // Wire contracts: generated from proto-docs/*.proto, committed.
        .target(
            name: "JSMContracts",
            dependencies: [.product(name: "SwiftProtobuf", package: "swift-protobuf")],
            swiftSettings: strict
        ),
        // The Jira Server/DC source adapter: one query logic over PostgreSQL and SQLite.
        .target(
            name: "JSMSource",
            dependencies: [
                "JSMDomain",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // A seeded generator of realistic Jira databases, for tests, demos and benchmarks.
        .target(
            name: "JSMSourceFixtures",
            dependencies: [
                "JSMSource", "JSMDomain",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Generates, or reads and classifies, a Jira source; prints users/s and peak RSS.
        .executableTarget(
            name: "SourceBenchmark",
            dependencies: [
                "JSMSource", "JSMSourceFixtures", "JSMDomain",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The cloud-site port and its Atlassian Cloud REST adapter (AsyncHTTPClient).
        .target(
            name: "JSMCloud",
            dependencies: [
                "JSMDomain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: strict
        ),
        // The local cloud site: Hummingbird application over SQLite or PostgreSQL.
        .target(
            name: "JSMCloudSite",
            dependencies: [
                "JSMDomain",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOFoundationCompat", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Drives creations against the site through the adapter and a raw client; prints the figures.
        .executableTarget(
            name: "SiteBenchmark",
            dependencies: [
                "JSMCloud", "JSMDomain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // One SQLite setting Swift cannot call (a variadic C function), for the ledger's connection.
        .target(name: "CSQLiteLedger"),
        // The ledger: migrations, scope claims, batches, mappings, totals; on SQLite and PostgreSQL.
        // Its SQLite connection drives sqlite-nio's SQLite C target directly (statement cache).
        .target(
            name: "JSMLedger",
            dependencies: [
                "JSMDomain", "CSQLiteLedger",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "SQLiteNIO", package: "sqlite-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Completes batches of 500 identities on both databases; prints median, p95 and peak RSS.
        .executableTarget(
            name: "LedgerBenchmark",
            dependencies: [
                "JSMLedger", "JSMDomain",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Producer, workers and aggregator: the migration over AMQP.
        .target(
            name: "JSMServices",
            dependencies: [
                "AMQP", "JSMDomain", "JSMContracts",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
            ],
            swiftSettings: strict
        ),
        // The migration end to end: producer (start), workers, aggregator, report and verify.
        .target(
            name: "JSMPipeline",
            dependencies: [
                "AMQP", "JSMDomain", "JSMContracts", "JSMServices", "JSMSource", "JSMLedger", "JSMCloud",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SwiftProtobuf", package: "swift-protobuf"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Runs a whole migration on one machine: a generated source, an in-process local site and
        // worker processes; shared by the demo, the end-to-end tests and the pipeline benchmark.
        .target(
            name: "JSMLocalRun",
            dependencies: [
                "JSMPipeline", "JSMCloudSite", "JSMSource", "JSMSourceFixtures", "JSMDomain", "JSMLedger", "JSMCloud",
                "JSMServices", "AMQP",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "jsm-migrate",
            dependencies: [
                "AMQP", "JSMDomain", "JSMContracts", "JSMServices", "JSMSource", "JSMSourceFixtures", "JSMCloudSite",
                "JSMPipeline", "JSMLedger", "JSMCloud", "JSMLocalRun",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Migrates a generated source end to end with worker processes; prints identities/s,
        // efficiency against the site's raw rate, peak RSS per process and a re-run's time.
        .executableTarget(
            name: "PipelineBenchmark",
            dependencies: [
                "AMQP", "JSMCloud", "JSMContracts", "JSMDomain", "JSMLedger", "JSMLocalRun", "JSMPipeline",
                "JSMServices",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "AMQPBenchmark",
            dependencies: [
                "AMQP",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JSMSourceTests",
            dependencies: [
                "JSMSource", "JSMSourceFixtures", "JSMDomain",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JSMCloudSiteTests",
            dependencies: [
                "JSMCloud", "JSMCloudSite", "JSMDomain",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JSMLedgerTests",
            dependencies: ["JSMLedger", "JSMDomain", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "JSMPipelineTests",
            dependencies: [
                "jsm-migrate", "JSMPipeline", "JSMLocalRun", "JSMLedger", "JSMSource", "JSMSourceFixtures", "JSMCloud",
                "JSMCloudSite",
                "JSMDomain", "JSMContracts", "JSMServices", "AMQP",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "CLITests", dependencies: ["jsm-migrate"], swiftSettings: strict),
        .testTarget(name: "AMQPTests", dependencies: ["AMQP"], swiftSettings: strict),
        .testTarget(name: "JSMDomainTests", dependencies: ["JSMDomain"], swiftSettings: strict),
        .testTarget(name: "JSMContractsTests", dependencies: ["JSMContracts", "JSMDomain"], swiftSettings: strict),
        .testTarget(
            name: "AMQPIntegrationTests",
            dependencies: ["AMQP", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
