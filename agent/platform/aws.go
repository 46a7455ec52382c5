package platform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/ec2/imds"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/tfsite/tfsite/agent/config"
	"github.com/tfsite/tfsite/internal/readlimit"
)

// awsFetcher reads EC2's instance metadata with AWS's own IMDS client
// (aws-sdk-go-v2/feature/ec2/imds: small, maintained, and it implements the
// IMDSv2 session-token flow). IMDSv1 is refused unless cfg.AllowIMDSv1.
func awsFetcher(cfg Config, h *httpClient) fetcher {
	fallback := aws.FalseTernary
	if cfg.AllowIMDSv1 {
		fallback = aws.TrueTernary
	}
	c := imds.New(imds.Options{
		Endpoint:          h.base,
		HTTPClient:        h.c,
		ClientEnableState: imds.ClientEnabled,
		EnableFallback:    fallback,
	})
	return func(ctx context.Context) (*config.PlatformData, error) {
		doc, err := c.GetInstanceIdentityDocument(ctx, &imds.GetInstanceIdentityDocumentInput{})
		if err != nil {
			return nil, fmt.Errorf("EC2 instance identity: %w", err)
		}
		d := &config.PlatformData{Name: AWS, InstanceID: doc.InstanceID, Region: doc.Region, Zone: doc.AvailabilityZone}
		if ip, err := awsText(ctx, c, "public-ipv4"); err == nil {
			d.PublicIPv4 = publicIPv4(ip)
		}
		ud, err := c.GetUserData(ctx, &imds.GetUserDataInput{})
		switch {
		case isNotFound(err): // no user-data given
		case err != nil:
			return nil, fmt.Errorf("EC2 user-data: %w", err)
		default:
			defer ud.Content.Close()
			if d.UserData, err = readUserData(ud.Content, "EC2 user-data"); err != nil {
				return nil, err
			}
			d.Where = "IMDSv2 " + h.base + "/latest/user-data"
		}
		return d, nil
	}
}

// awsText reads one meta-data item.
func awsText(ctx context.Context, c *imds.Client, path string) (string, error) {
	out, err := c.GetMetadata(ctx, &imds.GetMetadataInput{Path: path})
	if err != nil {
		return "", err
	}
	defer out.Content.Close()
	b, err := readlimit.All(out.Content, "EC2 meta-data "+path, 4096)
	return string(b), err
}

func isNotFound(err error) bool {
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound
}

// readUserData reads user-data within config.MaxUserData; over it is bad
// input (config.ErrInvalid).
func readUserData(r io.Reader, what string) ([]byte, error) {
	b, err := readlimit.All(r, what, config.MaxUserData)
	if errors.Is(err, readlimit.ErrTooLarge) {
		return nil, fmt.Errorf("%w: %w (docs/config.md, Limits)", config.ErrInvalid, err)
	}
	return b, err
}
