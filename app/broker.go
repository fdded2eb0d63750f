package app

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/causeway/causeway/config"
	"github.com/causeway/causeway/mqttcore"
)

// startBroker starts the built-in broker of cfg.
func startBroker(cfg *config.Config, log *slog.Logger) (*mqttcore.MochiBroker, error) {
	opts, err := brokerOptions(cfg, log)
	if err != nil {
		return nil, err
	}
	return mqttcore.StartBroker(opts)
}

// brokerOptions maps [broker] to the broker's options. A plaintext
// password (password or password_file) is hashed with bcrypt here, so the
// broker only ever holds hashes; the users are hashed in parallel, as each
// costs tens of milliseconds on a Raspberry Pi. AllowAnonymous is the
// effective value: the configuration already applied the default (true
// only while every listener is on loopback).
func brokerOptions(cfg *config.Config, log *slog.Logger) (mqttcore.BrokerOptions, error) {
	b := &cfg.Broker
	opts := mqttcore.BrokerOptions{
		Listen:         b.Listen,
		TLSListen:      b.TLSListen,
		TLSCertFile:    b.TLSCertFile,
		TLSKeyFile:     b.TLSKeyFile,
		WebSocket:      b.Websocket,
		AllowAnonymous: b.AllowAnonymous,
		Log:            log,
		Users:          make([]mqttcore.BrokerUser, len(b.Users)),
	}
	errs := make([]error, len(b.Users))
	var wg sync.WaitGroup
	for i := range b.Users {
		u := &b.Users[i]
		opts.Users[i] = mqttcore.BrokerUser{
			Name:         u.Name,
			PasswordHash: []byte(u.PasswordHash),
			Publish:      append([]string(nil), u.Publish...),
			Subscribe:    append([]string(nil), u.Subscribe...),
		}
		if u.PasswordHash != "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			h, err := mqttcore.HashPassword([]byte(u.Password))
			if err != nil {
				errs[i] = fmt.Errorf("broker.user[%d] %q: %w", i, u.Name, err)
				return
			}
			opts.Users[i].PasswordHash = h
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return opts, err
		}
	}
	return opts, nil
}
