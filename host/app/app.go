// Package app is the composition root: it turns a config into running components and owns
// their start and shutdown order (SMTP stops accepting first, the spool closes last).
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/fsnotify/fsnotify"

	"github.com/wasmta/wasmta/host/auth"
	"github.com/wasmta/wasmta/host/cluster"
	"github.com/wasmta/wasmta/host/config"
	"github.com/wasmta/wasmta/host/delivery"
	"github.com/wasmta/wasmta/host/dkim"
	"github.com/wasmta/wasmta/host/httpapi"
	"github.com/wasmta/wasmta/host/logs"
	"github.com/wasmta/wasmta/host/logs/webhook"
	"github.com/wasmta/wasmta/host/message"
	"github.com/wasmta/wasmta/host/metrics"
	"github.com/wasmta/wasmta/host/plugin"
	"github.com/wasmta/wasmta/host/queue"
	"github.com/wasmta/wasmta/host/route"
	"github.com/wasmta/wasmta/host/smtpserver"
	"github.com/wasmta/wasmta/host/spool"
	"github.com/wasmta/wasmta/host/wiring"
)

// App is a running relay.
type App struct {
	cfg   *config.Config
	diag  *slog.Logger
	spool *spool.Spool
	logs  *logs.Logger
	queue *queue.Manager
	smtp  *smtpserver.Server
	http  *httpapi.Server // nil: [http] listen = ""
	host  *plugin.Host
	chain *plugin.Chain
	users *auth.Store  // nil: no smtp.auth_users_file
	dkim  *dkim.Signer // [[dkim]] keys; reception signs with it after the plugins ran
	// metrics are served at GET /metrics on the HTTP API (metrics.go)
	metrics *metrics.Metrics
	// logHook sends records to [logs.webhook] (logs.go); nil without one
	logHook *webhook.Hook
	// cluster shares limits and admin rules with the other nodes (cluster.go); nil without [redis]
	cluster *cluster.Client
	// fleet shares the admin rules and runs the heartbeat (fleet.go); nil without [redis]
	fleet   *fleet
	version string

	configPath string                // "" when started on the embedded default
	pluginCfgs []config.PluginConfig // what the chain was built from
	reloadMu   sync.Mutex
	stopping   bool // set by Shutdown under reloadMu: a late debounced reload must not run
	watcher    *fsnotify.Watcher
	watchMu    sync.Mutex
	watched    map[string]bool // absolute paths whose change triggers a reload
	// resolved maps each watched path that is a symlink to what it resolved to when watched:
	// a deployment that swaps a symlink further up (a Kubernetes ConfigMap's ..data) changes
	// the file without any event naming it.
	resolved    map[string]string
	watchedDirs map[string]bool
	control     net.Listener
	serving     atomic.Bool // between the end of Start and the start of Shutdown (readiness)
}

// SetConfigPath tells the app which file its config came from, so reloads re-read it.
func (a *App) SetConfigPath(path string) { a.configPath = path }

// SetVersion names the running version (the cluster heartbeat shows it); call it before Start.
func (a *App) SetVersion(v string) {
	a.version = v
	if a.fleet != nil {
		a.fleet.version = v
	}
}

// New builds every component from cfg; nothing listens until Start.
func New(cfg *config.Config, diag *slog.Logger) (*App, error) {
	if diag == nil {
		diag = slog.Default()
	}
	if err := checkPlaces(cfg); err != nil {
		return nil, err
	}
	relay, err := config.ParsePrefixes(cfg.SMTP.RelayHosts)
	if err != nil {
		return nil, err
	}
	res, err := wiring.Resolver(cfg)
	if err != nil {
		return nil, err
	}
	tlsConfig, err := serverTLS(cfg)
	if err != nil {
		return nil, err
	}
	if tlsConfig == nil {
		// STARTTLS and listen_tls always encrypt, as KumoMTA does (design.md §12).
		if tlsConfig, err = smtpserver.SelfSignedTLS(cfg.Hostname, time.Now()); err != nil {
			return nil, fmt.Errorf("self-signed certificate: %w", err)
		}
		diag.Warn("no smtp.tls_certificate: STARTTLS and listen_tls use a self-signed certificate generated at start", "hostname", cfg.Hostname)
	}
	users, err := openUsers(cfg)
	if err != nil {
		return nil, err
	}
	for _, w := range relayWarnings(cfg) {
		diag.Warn(w)
	}

	keys, err := loadDKIM(cfg)
	if err != nil {
		return nil, err
	}
	a := &App{cfg: cfg, diag: diag, users: users, chain: plugin.NewChain(), pluginCfgs: cfg.Plugins, watchedDirs: map[string]bool{}, dkim: dkim.NewSigner(keys)}
	if a.cluster, err = openCluster(cfg, diag); err != nil {
		return nil, err
	}
	if len(cfg.Plugins) > 0 {
		if a.host, err = plugin.NewHost(cfg.WasmCache, diag); err != nil {
			return nil, err
		}
		a.host.SetDKIMKeys(a.dkim)
		if a.chain, err = wiring.LoadPlugins(context.Background(), a.host, cfg.Plugins); err != nil {
			a.host.Close()
			return nil, err
		}
	}
	if err = a.openLogs(cfg); err != nil {
		a.closePlugins()
		return nil, err
	}
	a.metrics = a.newMetrics()
	// Opening waits while the spool's disk is too full to open safely; SIGINT/SIGTERM end the
	// wait (main installs its own handlers only after New).
	openCtx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	a.spool, err = spool.OpenContext(openCtx, spool.Options{
		Path:     cfg.Spool.Path,
		MinFree:  int64(cfg.Spool.MinFree),
		MaxBody:  int64(cfg.SMTP.MaxMessageSize),
		Log:      diag,
		Observer: a.metrics,
	})
	stop()
	if err != nil {
		a.closeLogs()
		a.closePlugins()
		return nil, err
	}
	defaults := queue.Config{
		RetryInterval:    cfg.Queue.RetryInterval.D(),
		MaxRetryInterval: cfg.Queue.MaxRetryInterval.D(),
		MaxAge:           cfg.Queue.MaxAge.D(),
		EgressPool:       cfg.Queue.EgressPool,
	}
	paths, err := newEgressPaths(cfg)
	if err != nil {
		a.spool.Close()
		a.logs.Close()
		a.closePlugins()
		return nil, err
	}
	paths.plugins = a.chain // get_egress_path_config; plugins added by a reload apply too

	// Admin suspensions and bounce rules survive restarts (the spool), and in a cluster hold on
	// every node (Redis; the spool keeps this node's copy).
	var rules queue.RuleStore = a.spool
	if a.cluster != nil {
		a.fleet = newFleet(a.cluster, a.spool, cfg.Redis.ClusterName, a.version, cfg.Redis.DialTimeout.D()+cfg.Redis.Timeout.D(), diag)
		rules = a.fleet
	}
	a.queue = queue.New(queue.Options{
		Store:                      a.spool,
		Resolver:                   res,
		Dialer:                     paths.dialer(paths.defaults),
		Paths:                      paths,
		Configs:                    wiring.QueueConfigs{Chain: a.chain, Defaults: defaults},
		Defaults:                   defaults,
		Log:                        a.logs,
		Diag:                       diag,
		ConnectionLimit:            paths.defaults.ConnectionLimit,
		MaxDeliveriesPerConnection: paths.defaults.MaxDeliveriesPerConnection,
		IdleTimeout:                paths.defaults.IdleTimeout,
		RefreshInterval:            cfg.Queue.RefreshInterval.D(),
		Pools:                      egressPools(cfg),
		Rules:                      rules,
		Shared:                     sharedLimits(a.cluster),
		OnFailure:                  a.bounceHook(),
		OnRelayed:                  a.relayedHook(),
	})
	a.smtp = smtpserver.New(smtpserver.Options{
		Hostname:            cfg.Hostname,
		Listen:              cfg.SMTP.Listen,
		RelayHosts:          relay,
		MaxMessageSize:      int64(cfg.SMTP.MaxMessageSize),
		MaxRecipients:       cfg.SMTP.MaxRecipients,
		MaxLineLength:       cfg.SMTP.MaxLineLength,
		MaxConnections:      cfg.SMTP.MaxConnections,
		MaxConnectionsPerIP: cfg.SMTP.MaxConnectionsPerIP,
		MaxErrors:           cfg.SMTP.MaxErrors,
		IdleTimeout:         cfg.SMTP.IdleTimeout.D(),
		DataTimeout:         cfg.SMTP.DataTimeout.D(),
		TLS:                 tlsConfig,
		ListenTLS:           cfg.SMTP.ListenTLS,
		Auth:                authenticator(users),
		Space:               a.spool,
		Signer:              a.dkim,
		DSN:                 cfg.Bounce.Enabled,
		Receiver:            a.queue,
		Policy:              a.chain, // plugins added by a reload apply at once; an empty chain costs one atomic load
		Log:                 a.logs,
		Diag:                diag,
	})
	if a.fleet != nil {
		a.fleet.q = a.queue
	}
	a.http = a.newHTTP()
	if a.fleet != nil {
		a.fleet.api = a.HTTPAddr
	}
	a.serveMetrics()
	return a, nil
}

// Start recovers the spool, starts delivery and opens the SMTP listeners.
func (a *App) Start() error {
	// Recovered mail is only put on the queue's timer heap during the scan; nothing is attempted
	// before queue.Start, after the whole scan: Scan counts shared-body references as it goes,
	// and a recovered message that bounced at once must not delete a body a sibling further on
	// still needs. Only what scheduling needs is read (message.Sched): each message waits in
	// brief and its record is read when it comes due, so a large queue is not built in memory.
	if _, err := a.queue.LoadRules(); err != nil { // before recovery: held mail stays held
		return fmt.Errorf("admin rules: %w", err)
	}
	n, bad := 0, 0
	err := a.spool.ScanSched(func(m message.Sched) error {
		a.queue.RecoverSched(m)
		n++
		return nil
	}, func(key []byte, err error) {
		bad++
		a.diag.Error("unreadable spool record set aside under q/ (not delivered; kept for an operator)", "key", string(key), "err", err)
	})
	if err != nil {
		return fmt.Errorf("spool scan: %w", err)
	}
	a.queue.Start()
	// The control socket comes up before SMTP answers, so whoever sees the banner (an operator's
	// script, a test) can reach `wasmta plugin status` at once.
	if err := a.startControl(); errors.Is(err, errControlInUse) {
		a.queue.Stop(context.Background())
		return err
	} else if err != nil {
		a.diag.Warn("control socket unavailable; wasmta plugin reload/status will not reach this server", "err", err)
	}
	// HTTP, like the control socket, is up before SMTP answers: a banner means every door is open.
	if err := a.startHTTP(); err != nil {
		if a.control != nil {
			a.control.Close()
		}
		a.queue.Stop(context.Background())
		return err
	}
	if a.fleet != nil {
		a.fleet.start() // after HTTP: the heartbeat names the bound API address
	}
	// The watcher too is on before SMTP answers: an edit made once the banner is seen (by an
	// operator's script, a test) must not fall before the watch and be missed.
	if !a.cfg.Watch {
		// reload with SIGHUP or wasmta plugin reload
	} else if err := a.startWatcher(); err != nil {
		a.diag.Warn("file watcher unavailable; reload plugins with SIGHUP", "err", err)
	}
	if err := a.smtp.Listen(); err != nil {
		if a.watcher != nil {
			a.watcher.Close()
			a.watcher = nil
		}
		if a.fleet != nil {
			a.fleet.stop()
		}
		a.stopHTTP(context.Background())
		if a.control != nil {
			a.control.Close()
		}
		a.queue.Stop(context.Background())
		return err
	}
	a.smtp.Serve()
	var plugins []string
	for _, p := range a.chain.Plugins() {
		plugins = append(plugins, p.Name()+"@"+p.Generation().ID)
	}
	if a.logHook != nil {
		a.logHook.Start()
	}
	a.serving.Store(true)
	a.diag.Info("wasmta started", "smtp", a.SMTPAddrs(), "http", a.HTTPAddr(), "plugins", plugins, "spool", a.cfg.Spool.Path, "recovered", n, "unreadable", bad, "logs", a.logs.Path())
	return nil
}

// SMTPAddrs are the bound SMTP addresses.
func (a *App) SMTPAddrs() []net.Addr { return a.smtp.Addrs() }

// Submit queues messages as reception does, with meta already set (used by in-process tests
// and, later, by HTTP injection and plugins).
func (a *App) Submit(msgs []*message.Message, body []byte) error { return a.queue.Submit(msgs, body) }

// Stats returns queue counters.
func (a *App) Stats() queue.Stats { return a.queue.Stats() }

// SpoolStats returns the spool's free-space counters (reserve, refusals).
func (a *App) SpoolStats() spool.Stats { return a.spool.Stats() }

// Shutdown stops gracefully: no new connections, in-flight SMTP transactions finish, deliveries
// in progress finish, then the spool is flushed and closed.
func (a *App) Shutdown(ctx context.Context) {
	a.serving.Store(false)
	a.reloadMu.Lock() // waits for a reload in progress
	a.stopping = true
	a.reloadMu.Unlock()
	if a.watcher != nil {
		a.watcher.Close()
	}
	if a.control != nil {
		a.control.Close()
	}
	a.stopHTTP(ctx)
	a.smtp.Shutdown(ctx)
	if a.fleet != nil {
		a.fleet.stop() // no rule arrives into a stopping queue; the node leaves the cluster
	}
	qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	a.queue.Stop(qctx)
	cancel()
	if err := a.spool.Close(); err != nil {
		a.diag.Error("spool close", "err", err)
	}
	a.closeLogs()
	a.closePlugins()
	if a.cluster != nil {
		_ = a.cluster.Close()
	}
	a.diag.Info("wasmta stopped")
}

func (a *App) closePlugins() {
	a.chain.Close(context.Background())
	if a.host != nil {
		a.host.Close()
	}
}

// dialer adapts the delivery client to the queue's Dialer interface.
type dialer struct{ c *delivery.Client }

func (d dialer) Connect(ctx context.Context, hosts []route.Host) (queue.Conn, error) {
	c, err := d.c.Connect(ctx, hosts)
	if err != nil {
		return nil, err
	}
	return c, nil
}

var _ queue.Conn = (*delivery.Conn)(nil)
var _ queue.DSNOfferer = (*delivery.Conn)(nil)
