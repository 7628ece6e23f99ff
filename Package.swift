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
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-protobuf", exact: "1.39.0"),
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
        .executableTarget(
            name: "jsm-migrate",
            dependencies: [
                "AMQP", "JSMDomain", "JSMContracts", "JSMServices",
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
