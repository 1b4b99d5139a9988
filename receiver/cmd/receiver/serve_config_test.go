package main

import (
	"context"
	"strings"
	"testing"
)

// The consumer group settings are validated before anything connects, and
// an error names the setting at fault.
func TestServeGroupSettingsNameTheSetting(t *testing.T) {
	cases := map[string]struct {
		env  map[string]string
		want string
	}{
		"short session":       {map[string]string{"RECEIVER_SESSION_TIMEOUT": "500ms"}, "RECEIVER_SESSION_TIMEOUT"},
		"slow heartbeat":      {map[string]string{"RECEIVER_HEARTBEAT_INTERVAL": "3s"}, "RECEIVER_HEARTBEAT_INTERVAL"},
		"no heartbeat":        {map[string]string{"RECEIVER_HEARTBEAT_INTERVAL": "0s"}, "RECEIVER_HEARTBEAT_INTERVAL"},
		"short rebalance":     {map[string]string{"RECEIVER_REBALANCE_TIMEOUT": "5s"}, "RECEIVER_REBALANCE_TIMEOUT"},
		"bad instance id":     {map[string]string{"RECEIVER_GROUP_INSTANCE_ID": "pod 0"}, "RECEIVER_GROUP_INSTANCE_ID"},
		"unknown protocol":    {map[string]string{"RECEIVER_GROUP_PROTOCOL": "range"}, "RECEIVER_GROUP_PROTOCOL"},
		"unparsable duration": {map[string]string{"RECEIVER_SESSION_TIMEOUT": "soon"}, "RECEIVER_SESSION_TIMEOUT"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			env := map[string]string{"KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD": "p"}
			for k, v := range tc.env {
				env[k] = v
			}
			_, _, err := invoke(context.Background(), env, "serve")
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("serve = %v, want an error naming %s", err, tc.want)
			}
		})
	}
}
