package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
)

// injectCmd is `wasmta inject`: one POST /api/inject/v1, either a ready message file or a
// message built by the server from flags (the KumoMTA builder object).
func injectCmd() *cobra.Command {
	var (
		from, subject, text, html, fromName string
		to, headers, attach                 []string
		asJSON                              bool
	)
	c := &cobra.Command{
		Use:   "inject [FILE.eml]",
		Short: "Inject a message over the HTTP API: a message file, or one built from --subject/--text/--html/--attach",
		Example: `  wasmta inject message.eml --from a@example.com --to b@example.net
  wasmta inject --from a@example.com --to b@example.net --to c@example.org \
      --subject "Hello {{ name }}" --text "Hi {{ name }}" --attach report.pdf`,
		Args: cobra.MaximumNArgs(1),
	}
	api := newAPIClient()
	api.flags(c.Flags())
	c.Flags().StringVar(&from, "from", "", "envelope sender (required)")
	c.Flags().StringArrayVar(&to, "to", nil, "recipient; repeat for more (required)")
	c.Flags().StringVar(&subject, "subject", "", "builder: subject (a template)")
	c.Flags().StringVar(&text, "text", "", "builder: text/plain body (a template)")
	c.Flags().StringVar(&html, "html", "", "builder: text/html body (a template)")
	c.Flags().StringVar(&fromName, "from-name", "", "builder: display name of the From header")
	c.Flags().StringArrayVar(&headers, "header", nil, "builder: extra header as 'Name: value'; repeat for more")
	c.Flags().StringArrayVar(&attach, "attach", nil, "builder: file to attach; repeat for more")
	c.Flags().BoolVar(&asJSON, "json", false, "print the server's JSON answer")
	c.RunE = func(cmd *cobra.Command, args []string) error {
		if from == "" || len(to) == 0 {
			return errors.New("--from and at least one --to are required")
		}
		req := map[string]any{"envelope_sender": from}
		var rcpts []map[string]string
		for _, t := range to {
			rcpts = append(rcpts, map[string]string{"email": t})
		}
		req["recipients"] = rcpts
		builderSet := subject != "" || text != "" || html != "" || fromName != "" || len(headers) > 0 || len(attach) > 0
		switch {
		case len(args) == 1 && builderSet:
			return errors.New("give a message file or builder flags, not both")
		case len(args) == 1:
			b, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			req["content"] = string(b)
		case !builderSet:
			return errors.New("give a message file, or at least one of --subject, --text, --html, --attach")
		default:
			content, err := builderContent(from, fromName, subject, text, html, headers, attach)
			if err != nil {
				return err
			}
			req["content"] = content
		}
		var resp struct {
			SuccessCount     int      `json:"success_count"`
			FailCount        int      `json:"fail_count"`
			FailedRecipients []string `json:"failed_recipients"`
			Errors           []string `json:"errors"`
		}
		var raw json.RawMessage
		if err := api.do("POST", "/api/inject/v1", nil, req, &raw); err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &resp); err != nil {
			return err
		}
		w := cmd.OutOrStdout()
		if asJSON {
			if err := printJSON(w, raw); err != nil {
				return err
			}
		} else {
			fmt.Fprintf(w, "%d accepted, %d failed\n", resp.SuccessCount, resp.FailCount)
			for _, e := range resp.Errors {
				fmt.Fprintln(w, "  "+e)
			}
		}
		// The exit status is the same with --json: a script must not take a refused
		// recipient for an accepted one because it asked for JSON.
		if resp.FailCount > 0 {
			return fmt.Errorf("%d of %d recipients failed", resp.FailCount, len(to))
		}
		return nil
	}
	return c
}

// builderContent is the KumoMTA builder object for the flags given.
func builderContent(from, fromName, subject, text, html string, headers, attach []string) (map[string]any, error) {
	content := map[string]any{"from": map[string]string{"email": from, "name": fromName}}
	if subject != "" {
		content["subject"] = subject
	}
	if text != "" {
		content["text_body"] = text
	}
	if html != "" {
		content["html_body"] = html
	}
	if len(headers) > 0 {
		h := map[string]string{}
		for _, kv := range headers {
			k, v, ok := strings.Cut(kv, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("--header %q: want 'Name: value'", kv)
			}
			h[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		content["headers"] = h
	}
	var atts []map[string]any
	for _, p := range attach {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		ct := mime.TypeByExtension(filepath.Ext(p))
		if ct == "" {
			ct = "application/octet-stream"
		}
		atts = append(atts, map[string]any{
			"data": base64.StdEncoding.EncodeToString(b), "base64": true,
			"content_type": ct, "file_name": filepath.Base(p),
		})
	}
	if atts != nil {
		content["attachments"] = atts
	}
	return content, nil
}
