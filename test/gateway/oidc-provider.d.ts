// Minimal typings for the parts of oidc-provider 9 the integration test uses (the package ships none).
declare module 'oidc-provider' {
  import type { IncomingMessage, ServerResponse } from 'node:http';
  import type { Socket } from 'node:net';

  export interface KoaContextWithOIDC {
    readonly socket: Socket;
    get(header: string): string;
  }
  type Ctx = KoaContextWithOIDC;

  export interface Configuration {
    clients?: Record<string, unknown>[];
    jwks?: { keys: Record<string, unknown>[] };
    ttl?: Record<string, number>;
    extraTokenClaims?: (
      ctx: Ctx,
      token: unknown,
    ) => Record<string, unknown> | Promise<Record<string, unknown>>;
    features?: {
      devInteractions?: { enabled: boolean };
      clientCredentials?: { enabled: boolean };
      dPoP?: { enabled: boolean };
      mTLS?: {
        enabled: boolean;
        certificateBoundAccessTokens?: boolean;
        getCertificate?: (ctx: Ctx) => string | undefined;
        certificateAuthorized?: (ctx: Ctx) => boolean;
      };
      resourceIndicators?: {
        enabled: boolean;
        defaultResource?: (ctx: Ctx, client: unknown, oneOf?: string[]) => string | Promise<string>;
        useGrantedResource?: (ctx: Ctx, model: unknown) => boolean | Promise<boolean>;
        getResourceServerInfo?: (ctx: Ctx, resource: string, client: unknown) => Record<string, unknown>;
      };
    };
  }

  export default class Provider {
    constructor(issuer: string, configuration?: Configuration);
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }
}
