package control

import (
	"encoding/json"
	"time"
)

// The wire types of the cluster-wide queue summary (GET /api/admin/cluster/queue-summary/v1,
// `wasmta queue summary --cluster`): what each live node's heartbeat says about itself, and
// totals over them.

// MaxSummaryQueues bounds the queues a node's heartbeat carries: its largest scheduled queues
// and its largest ready queues, this many of each.
const MaxSummaryQueues = 100

// NodeStatus is what a node's heartbeat carries (stored in Redis, refreshed every second).
type NodeStatus struct {
	Node    string    `json:"node"`
	Version string    `json:"version"`
	Started time.Time `json:"started"`
	// API is the node's HTTP API address ([http] listen as bound), "" without one.
	API string `json:"api,omitempty"`
	// Heartbeat is when the node wrote this (its own clock).
	Heartbeat time.Time `json:"heartbeat"`
	// Summary is the node's GET /api/admin/queue-summary/v1 as of Summary.now, cut to its
	// MaxSummaryQueues largest scheduled and ready queues (Truncated says whether it was cut;
	// Summary.queued still counts every message). A node recomputes it at most once a second,
	// less often when walking its queue is costly.
	Summary   json.RawMessage `json:"summary"`
	Truncated bool            `json:"truncated,omitempty"`
}

// ClusterSummary is every live node's status and the totals over them.
type ClusterSummary struct {
	Cluster string       `json:"cluster"`
	Now     time.Time    `json:"now"`
	Nodes   []NodeStatus `json:"nodes"` // sorted by name
	Total   ClusterTotal `json:"total"`
}

// ClusterTotal adds up the nodes' summaries.
type ClusterTotal struct {
	Nodes  int   `json:"nodes"`
	Queued int64 `json:"queued"`
	// Scheduled is each scheduled queue's count over the nodes that listed it, largest first.
	Scheduled []QueueTotal `json:"scheduled_queues"`
}

// QueueTotal is one scheduled queue's messages on every node that listed it.
type QueueTotal struct {
	Name  string `json:"name"`
	Count int    `json:"count"`
	Nodes int    `json:"nodes"` // how many nodes hold some
}
