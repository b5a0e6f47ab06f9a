// Programmatic API: the types and building blocks a user may want from code.
export { serve, type ServeOptions, type ServerHandle } from './serve.js';
export { Arbiter, type ArbiterOptions, type ArbiterState } from './arbiter/arbiter.js';
export { loadConfig, ConfigError, type LoadedConfig, type Source } from './config/load.js';
export { settingsTable, type Settings, type SettingsInput, type SettingName, type SettingDef } from './config/settings.js';
export { defineConfig, type UserConfig } from './config/define-config.js';
export { parseBind, formatBind, type BindSpec } from './listeners/bind-spec.js';
export type { RequestListener, UpgradeListener, AppKind, FetchInfo } from './worker/app.js';
export type { ClientInfo, RequestWithClientInfo } from './proxy/trust.js';
export type { Hooks, ServerHooks, ServerView, WorkerView, WorkerInfo } from './config/hooks.js';
export { VERSION } from './version.js';
