import Testing

@testable import AMQP

/// The ack coalescing must ack every delivery exactly once, whatever order the handlers finish in.
@Suite("Ack coalescing")
struct AckTrackerTests {
    /// Replays acks in the given order, in passes of `passSize`, and returns what the broker would
    /// consider acknowledged, failing on a tag acknowledged twice (the broker's 406 "unknown delivery tag").
    func simulate(tags: Int, order: [UInt64], passSize: Int) -> Set<UInt64> {
        var tracker = AckTracker()
        var outstanding = Set<UInt64>()
        for tag in 1...UInt64(tags) {
            tracker.delivered(tag)
            outstanding.insert(tag)
        }
        var acknowledged = Set<UInt64>()
        var index = 0
        while index < order.count {
            for tag in order[index..<min(index + passSize, order.count)] { tracker.acked(tag) }
            index += passSize
            let (upTo, single) = tracker.drain()
            if let upTo {
                #expect(outstanding.contains(upTo), "multiple ack on a tag no longer outstanding: \(upTo)")
                for tag in outstanding where tag <= upTo {
                    acknowledged.insert(tag)
                    outstanding.remove(tag)
                }
            }
            for tag in single {
                #expect(outstanding.remove(tag) != nil, "tag \(tag) acknowledged twice")
                acknowledged.insert(tag)
            }
            // A multiple ack must never cover a delivery the application has not acked yet.
            #expect(acknowledged.isSubset(of: Set(order[0..<min(index, order.count)])))
        }
        return acknowledged
    }

    @Test("in-order acks collapse and cover everything")
    func inOrder() {
        let order = (1...1000).map { UInt64($0) }
        #expect(simulate(tags: 1000, order: order, passSize: 37) == Set(order))
    }

    @Test("shuffled acks in passes of any size are each sent exactly once", arguments: [1, 3, 50, 200])
    func shuffled(passSize: Int) {
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<20 {
            let order = (1...500).map { UInt64($0) }.shuffled(using: &generator)
            #expect(simulate(tags: 500, order: order, passSize: passSize) == Set(order))
        }
    }
}
