// Settings table, section Proxy: how far the reverse proxy is trusted (forwarding headers, the PROXY protocol).
import { ALLOW_LIST_ACCEPTED } from '../../proxy/trust.js';
import { def } from './definition.js';
import { allowList, bool, oneOf, proxyProtocolMode } from './parsers.js';

export const proxySettings = [
  def({
    name: 'forwardedAllowIps',
    section: 'Proxy',
    kind: 'list',
    default: ['127.0.0.1', '::1'],
    env: ['WS_PROXY_KIT_FORWARDED_ALLOW_IPS', 'FORWARDED_ALLOW_IPS'],
    accepted: ALLOW_LIST_ACCEPTED,
    parse: allowList,
    doc: 'Peers trusted to say who the client is (X-Forwarded-*, Forwarded). From anyone else those headers are ignored. See docs/proxies.md.',
  }),
  def({
    name: 'forwardedAllowUnix',
    section: 'Proxy',
    kind: 'boolean',
    default: true,
    accepted: 'true or false',
    parse: bool,
    doc: "Trust peers on UNIX socket binds: only processes allowed by the socket file's permissions can connect.",
  }),
  def({
    name: 'forwardedHeader',
    section: 'Proxy',
    kind: 'value',
    default: 'x-forwarded-for' as 'x-forwarded-for' | 'forwarded',
    accepted: 'x-forwarded-for (with X-Forwarded-Proto/-Host/-Port) or forwarded (RFC 7239)',
    parse: oneOf(['x-forwarded-for', 'forwarded']),
    doc: 'Which headers of a trusted peer give the client address, scheme and host.',
  }),
  def({
    name: 'stripUntrustedForwarded',
    section: 'Proxy',
    kind: 'boolean',
    default: true,
    accepted: 'true or false',
    parse: bool,
    doc: 'Remove X-Forwarded-*, Forwarded, X-Real-IP and X-Request-Id sent by an untrusted peer before the app sees the request.',
  }),
  def({
    name: 'proxyProtocol',
    section: 'Proxy',
    kind: 'value',
    default: 'off' as 'off' | 'v1' | 'v2' | 'auto',
    accepted: 'off, v1, v2 or auto (either version; true means auto)',
    parse: proxyProtocolMode,
    doc: 'Require a PROXY protocol header (HAProxy, nginx stream, load balancers) at the start of every connection on every bind.',
  }),
  def({
    name: 'proxyAllowIps',
    section: 'Proxy',
    kind: 'list',
    default: ['127.0.0.1', '::1'],
    accepted: ALLOW_LIST_ACCEPTED,
    parse: allowList,
    doc: 'Peers allowed to send a PROXY protocol header; others are disconnected. UNIX socket peers always are.',
  }),
];
